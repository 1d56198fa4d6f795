"""fleet.rollout.health_check's deadline holds whatever the server does (issue 14, items 4 and 5): a body
that trickles in is cut off at the deadline, and an app that answered and is then killed fails the check
within seconds. Real ansible-playbook runs against a trickling server on 127.0.0.1 and against the lab."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import typing as t
from pathlib import Path

from tests.support import run_tasks

TRICKLE_EVERY = 0.5  # seconds between two bytes of the body
HEADERS = b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100000\r\n\r\n"
TRICKLE_FOR = 30.0  # how long the server trickles at most, so that a check which never gives up still ends


@contextlib.contextmanager
def trickling_server() -> t.Iterator[str]:
    """An HTTP server on 127.0.0.1 that sends its status and headers at once, then its body one byte every
    half second; yields its URL."""
    stop = threading.Event()
    listener = socket.create_server(("127.0.0.1", 0))

    def trickle(connection: socket.socket) -> None:
        with connection, contextlib.suppress(OSError):  # the client hung up: its check gave up
            connection.recv(65536)
            connection.sendall(
                b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100000\r\n\r\n"
            )
            ends = time.monotonic() + TRICKLE_FOR
            while not stop.wait(TRICKLE_EVERY) and time.monotonic() < ends:
                connection.sendall(b"o")

    def serve() -> None:
        with contextlib.suppress(OSError):  # the listener was closed: the test is over
            while not stop.is_set():
                connection, _ = listener.accept()
                threading.Thread(target=trickle, args=(connection,), daemon=True).start()

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/health"
    finally:
        stop.set()
        listener.close()
        server.join(5)


def test_a_body_that_trickles_in_fails_the_check_at_its_deadline(tmp_path: Path) -> None:
    deadline = 3.0
    with trickling_server() as url:
        check = {"url": url, "deadline": deadline, "interval": 0.1}
        started = time.monotonic()
        result = run_tasks(tmp_path, [{"fleet.rollout.health_check": check, "ignore_errors": True}])["r0"]
        wall = time.monotonic() - started
    took = result.get("elapsed", result.get("seconds_to_healthy"))  # which one: failed or passed
    assert took < deadline + 1, f"the check took {took}s with a {deadline:g}s deadline: {result}"
    assert result["failed"] is True
    assert result["msg"].startswith(f"health check of {url} failed: not healthy within 3s"), result["msg"]
    assert "the 3s deadline passed while the answer was still arriving" in result["msg"], result["msg"]
    assert wall < deadline + 15, f"the playbook took {wall:.1f}s"
