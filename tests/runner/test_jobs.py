"""Job states as `fm ps` sees them (runner/jobs.py), read through the job store."""
from __future__ import annotations

import os

import pytest

from flowmetal.journal import open_store
from flowmetal.journal.jobstore import new_job_id
from flowmetal.runner import jobs

STARTED = {"version": "0.1.0", "name": "t", "filename": "t.fm", "source": "echo hi\n",
           "argv": ["t.fm"], "cwd": "/", "env": {}}


def make_job(home, name="deploy", records=(), create=True):
    """A job with `records`; (id, store). Without `create`: a job directory without a journal,
    as a creation cut short by a crash leaves it."""
    store = open_store(home)
    job_id = new_job_id(name)
    if create:
        with store.create(job_id, STARTED, fsync=False) as lease:
            for kind, fields in records:
                lease.append(kind, fields, sync=False)
    else:
        (store.jobs / job_id).mkdir(mode=0o700)
    return job_id, store


# ---- job states ----

@pytest.mark.parametrize("last, state, status", [
    (("job.finished", {"status": 0, "step": 4}), "done", 0),
    (("job.failed", {"status": 3, "step": 4, "error": {"message": "x"}}), "failed", 3),
    (("job.cancelled", {"status": 130, "step": 4}), "cancelled", 130),
])
def test_finished_states(home, last, state, status):
    job_id, store = make_job(home, records=[("effect.done", {"step": 4, "res": {}}), last])
    info = jobs.job_info(store, job_id)
    assert (info.state, info.status, info.steps, info.finished) == (state, status, 4, True)


def test_unfinished_job_without_runner_is_orphaned(home):
    job_id, store = make_job(home, records=[("effect.started", {"step": 7, "req": {}})])
    info = jobs.job_info(store, job_id)
    assert info.state == "orphaned" and info.steps == 7 and not info.finished
    assert info.since.endswith("Z") and info.pid is None


def test_unfinished_job_with_runner_is_running(home):
    job_id, store = make_job(home, records=[("effect.started", {"step": 2, "req": {}})])
    with store.lease(job_id):
        info = jobs.job_info(store, job_id)
    assert info.state == "running" and info.pid == os.getpid()


def test_a_job_whose_creation_was_cut_short_is_orphaned(home):
    job_id, store = make_job(home, create=False)
    assert jobs.job_info(store, job_id).state == "orphaned"


def test_list_jobs_hides_finished_unless_all(home):
    done, _ = make_job(home, "a", records=[("job.finished", {"status": 0})])
    open_, _ = make_job(home, "b")
    assert [j.id for j in jobs.list_jobs(open_store(home))] == [open_]
    assert {j.id for j in jobs.list_jobs(open_store(home), all_jobs=True)} == {done, open_}
    row = jobs.list_jobs(open_store(home))[0].as_json()
    assert {"id", "name", "state", "since", "waiting_on", "steps"} <= set(row)
    assert row["waiting_on"] is None
