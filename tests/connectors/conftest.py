"""Fixtures for the connector tests: a Term whose echo lands in pipes the test can read."""
import os

import pytest

from flowmetal.connectors import Term


class EchoTerm(Term):
    """A Term echoing into pipes; .echoed() returns (stdout, stderr) written so far."""

    def __init__(self, stdin_fd=None, echo=True):
        self._out_r, out_w = os.pipe()
        self._err_r, err_w = os.pipe()
        for fd in (self._out_r, self._err_r):
            os.set_blocking(fd, False)
        super().__init__(stdout_fd=out_w, stderr_fd=err_w, stdin_fd=stdin_fd, echo=echo)

    def echoed(self):
        return self._drain(self._out_r), self._drain(self._err_r)

    @staticmethod
    def _drain(fd):
        data = b""
        while True:
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                return data.decode()
            if not chunk:
                return data.decode()
            data += chunk

    def close(self):
        for fd in (self._out_r, self._err_r, self.stdout_fd, self.stderr_fd):
            try:
                os.close(fd)
            except OSError:
                pass


@pytest.fixture
def term():
    t = EchoTerm()
    yield t
    t.close()


@pytest.fixture
def env():
    return {"PATH": os.environ.get("PATH", os.defpath), "LC_ALL": "C"}
