"""Meanwhile: the machine's steps run in a helper thread while the runner's thread waits in
an fsync (fsync "always"); run() must return only once both have ended."""
import os
import threading
import time

import pytest

from flowmetal.runner.run import Meanwhile


@pytest.fixture
def meanwhile():
    m = Meanwhile()
    yield m
    m.stop()


def test_work_runs_in_the_helper_thread_and_run_waits_for_it(meanwhile, tmp_path):
    seen = []
    fd = os.open(tmp_path / "f", os.O_WRONLY | os.O_CREAT)
    try:
        def wait():
            os.write(fd, b"x")
            os.fsync(fd)
            time.sleep(0.05)        # the work ends meanwhile: run() must wait for it anyway

        def work():
            seen.append(threading.current_thread().name)
            time.sleep(0.1)
            seen.append("end")
            return 42

        assert meanwhile.run(work, wait) == 42
    finally:
        os.close(fd)
    assert seen == ["fm-meanwhile", "end"]


def test_an_error_of_the_work_is_raised_after_the_wait(meanwhile):
    waited = []

    def work():
        raise KeyError("no branch awaits step 7")

    with pytest.raises(KeyError, match="step 7"):
        meanwhile.run(work, lambda: waited.append(1))
    assert waited == [1]
    assert meanwhile.run(lambda: "again", lambda: None) == "again"   # still serving


def test_an_error_of_the_wait_still_waits_for_the_work(meanwhile):
    done = []

    def work():
        time.sleep(0.1)
        done.append(1)

    def wait():
        raise OSError(5, "fsync failed")

    with pytest.raises(OSError, match="fsync failed"):
        meanwhile.run(work, wait)
    assert done == [1]


def test_stop_ends_the_thread():
    m = Meanwhile()
    m.stop()
    deadline = time.monotonic() + 10
    while any(t.name == "fm-meanwhile" and t.is_alive() for t in threading.enumerate()):
        assert time.monotonic() < deadline, "the helper thread did not end"
        time.sleep(0.01)
