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

import pytest
from ansible_collections.fleet.rollout.plugins.module_utils._errors import ConnectionFailedError
from ansible_collections.fleet.rollout.plugins.module_utils._http import LATE_GRACE, HttpRequest, OpenUrlFetch

from lab.fleet import Lab
from tests.support import run_tasks

TRICKLE_EVERY = 0.5  # seconds between two bytes
HEADERS = b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100000\r\n\r\n"
HALF_A_HEADER = b"HTTP/1.0 200 OK\r\nX-Slow: "  # a header line that never ends
TRICKLE_FOR = 30.0  # how long the server trickles at most, so that a check which never gives up still ends


@contextlib.contextmanager
def trickling_server(head: bytes = HEADERS) -> t.Iterator[str]:
    """An HTTP server on 127.0.0.1 that sends ``head`` at once (its status and headers), then one byte
    every half second (its body, or the rest of a header); yields its URL."""
    stop = threading.Event()
    listener = socket.create_server(("127.0.0.1", 0))

    def trickle(connection: socket.socket) -> None:
        with connection, contextlib.suppress(OSError):  # the client hung up: its check gave up
            connection.recv(65536)
            connection.sendall(head)
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


@pytest.mark.parametrize(
    ("head", "error"),
    [(HEADERS, "the answer was still arriving after 1s"), (HALF_A_HEADER, "timed out")],
    ids=["body", "headers"],
)
def test_one_request_takes_at_most_its_timeout_whatever_trickles_in(head: bytes, error: str) -> None:
    with trickling_server(head) as url:
        started = time.monotonic()
        with pytest.raises(ConnectionFailedError, match=error) as caught:
            OpenUrlFetch()(HttpRequest(url, timeout=1.0))
        took = time.monotonic() - started
    assert took < 1.0 + LATE_GRACE + 0.3, f"the request took {took:.2f}s of its 1s: {caught.value.message}"
    assert caught.value.details["timed_out"] is True


KILL_AFTER = 5.0  # seconds into the check: well after its first healthy answer, well before stable_for


def check_with_kill(
    lab: Lab, tmp_path: Path, check: dict[str, t.Any], kill_after: float
) -> tuple[dict[str, t.Any], float]:
    """Run ``check`` on the lab's only host through ansible-playbook and SIGKILL that host's app
    ``kill_after`` seconds after the task before it (which marks when the check starts); returns the
    check's result and how many seconds after the kill the playbook ended."""
    host = lab.hosts[0]
    marker = tmp_path / "checking"
    killed: list[float] = []

    def kill_once_checking() -> None:
        while not marker.exists():
            time.sleep(0.02)
        time.sleep(kill_after)
        host.kill()
        killed.append(time.monotonic())

    killer = threading.Thread(target=kill_once_checking, daemon=True)
    killer.start()
    tasks: list[dict[str, t.Any]] = [
        {"ansible.builtin.file": {"path": str(marker), "state": "touch", "mode": "0600"}},
        {"fleet.rollout.health_check": check, "ignore_errors": True},
    ]
    result = run_tasks(tmp_path / "play", tasks)["r1"]
    ended = time.monotonic()
    killer.join(5)
    assert killed, f"the app was never killed; the check: {result}"
    return result, ended - killed[0]


@pytest.mark.lab(hosts=1)
def test_an_app_killed_after_it_answered_fails_the_check_within_seconds(lab: Lab, tmp_path: Path) -> None:
    # Healthy at once, then held by stable_for: the check is still running when the app dies.
    check = {"url": lab.hosts[0].health_url, "interval": 0.1, "stable_for": 30, "deadline": 60}
    result, after_kill = check_with_kill(lab, tmp_path, check, KILL_AFTER)
    observations = result["observations"]
    first_refused = next(o for o in observations if o["status"] is None)
    measured = (
        f"the check failed {result['elapsed'] - first_refused['at']:.2f}s after its first refused attempt, "
        f"the playbook ended {after_kill:.2f}s after the kill; the check: {result}"
    )
    assert after_kill < 10, measured
    assert result["failed"] is True and result["failed_fast"] is True, measured
    assert "after it had answered" in result["msg"], measured
    assert any(o["healthy"] for o in observations), measured  # it had answered before the kill
    assert result["elapsed"] - first_refused["at"] < 2, measured


@pytest.mark.lab(hosts=1)
def test_an_app_killed_before_the_check_first_saw_it_gets_the_startup_grace(lab: Lab, tmp_path: Path) -> None:
    # Killed before the first attempt, the app looks like one that has not started yet: refusals count
    # only once startup_grace has passed, as documented.
    check = {"url": lab.hosts[0].health_url, "interval": 0.1, "startup_grace": 3, "deadline": 60}
    lab.hosts[0].kill()
    started = time.monotonic()
    result = run_tasks(tmp_path / "play", [{"fleet.rollout.health_check": check, "ignore_errors": True}])[
        "r0"
    ]
    wall = time.monotonic() - started
    assert result["failed"] is True and result["failed_fast"] is True, result
    assert "after the 3s startup grace" in result["msg"], result["msg"]
    assert 3 <= result["elapsed"] < 4.5, result
    assert wall < 30, f"the playbook took {wall:.1f}s"
