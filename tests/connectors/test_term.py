"""Term: echoing to the job's terminal survives losing it."""
import os

from flowmetal.connectors import Term


def test_write_after_the_reader_left_is_silent():
    r, w = os.pipe()
    os.close(r)
    term = Term(stdout_fd=w, stderr_fd=w)
    try:
        term.write(1, b"lost")  # EPIPE: must not raise
        term.write(1, b"again")
        assert not term.isatty(1)
    finally:
        os.close(w)


def test_write_after_hangup_is_silent():
    leader, follower = os.openpty()
    term = Term(stdout_fd=follower, stderr_fd=follower, stdin_fd=follower)
    assert term.isatty(0) and term.isatty(1)
    os.close(leader)  # the terminal goes away: writes fail with EIO
    try:
        term.write(2, b"x" * 100_000)
        term.write(2, b"more")
    finally:
        os.close(follower)


def test_stream_failure_is_per_stream():
    r1, w1 = os.pipe()
    r2, w2 = os.pipe()
    os.close(r1)
    term = Term(stdout_fd=w1, stderr_fd=w2)
    try:
        term.write(1, b"gone")
        term.write(2, b"kept")
        assert os.read(r2, 10) == b"kept"
    finally:
        for fd in (w1, r2, w2):
            os.close(fd)


def test_detached_term_is_never_a_tty():
    leader, follower = os.openpty()
    try:
        term = Term(stdout_fd=follower, stderr_fd=follower, stdin_fd=follower, echo=False)
        assert term.isatty(0)  # input still comes from the terminal
        assert not term.isatty(1) and not term.isatty(2)
        assert not term.isatty(5)
    finally:
        os.close(leader)
        os.close(follower)


def test_nonblocking_terminal_still_gets_everything():
    r, w = os.pipe()
    os.set_blocking(w, False)
    term = Term(stdout_fd=w, stderr_fd=w)
    import threading
    got = []
    reader = threading.Thread(target=lambda: got.append(b"".join(iter(lambda: os.read(r, 65536), b""))))
    reader.start()
    term.write(1, b"z" * 300_000)  # more than the pipe holds: must wait, not drop
    os.close(w)
    reader.join(5)
    os.close(r)
    assert got == [b"z" * 300_000]
