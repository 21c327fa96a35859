"""The daemon answers as docs/api.yaml says: schemathesis generates requests from the document
(valid and invalid) and checks every answer (status, content type, body schema, no 5xx)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from .conftest import ROOT, Daemon, fm

SCHEMA = schemathesis.openapi.from_path(ROOT / "docs" / "api.yaml")


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("api")
    cfg = tmp / "config.toml"
    cfg.write_text('[daemon]\nlisten = "127.0.0.1:0"\nmax_body = 4096\n')
    env = dict(os.environ, FM_HOME=str(tmp / "home"), FM_CONFIG=str(cfg),
               PYTHONPATH=str(ROOT))
    d = Daemon(Path(env["FM_HOME"]), env).start()
    script = tmp / "wait.fm"
    script.write_text("sleep 600\n")
    job = fm("run", "-d", script, env=env).stdout.strip()
    fm("-c", "echo finished", env=env)
    d.job = job
    yield d
    fm("kill", job, env=env)
    d.stop()


# POST /jobs would run generated scripts: it is tested by hand in test_http.py.
@SCHEMA.exclude(path="/jobs", method="POST").parametrize()
@settings(max_examples=25, deadline=None,
          suppress_health_check=list(HealthCheck))
def test_the_daemon_conforms_to_api_yaml(case, api):
    if "job" in (case.path_parameters or {}) and case.path_parameters["job"] == "":
        case.path_parameters["job"] = api.job
    case.call_and_validate(base_url=api.url, headers={"Authorization": f"Bearer {api.token}"},
                           timeout=30)
