"""The watcher that holds a drained server out of rotation (a real detached process against the fake
runtime API, which serves it from a thread of this test)."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from ansible_collections.fleet.rollout.plugins.module_utils._balancer import BalancerMember
from ansible_collections.fleet.rollout.plugins.module_utils._errors import TimeoutExpiredError
from ansible_collections.fleet.rollout.plugins.module_utils._haproxy import RuntimeApiClient
from ansible_collections.fleet.rollout.plugins.module_utils._hold import HoldFiles, stop_watcher
from ansible_collections.fleet.rollout.plugins.module_utils._member import MemberRequest
from ansible_collections.fleet.rollout.plugins.module_utils._process import process_runs

from tests.fakes.lb_fake_runtime import FORCED_DRAIN, FakeRuntimeApi


@pytest.fixture
def api() -> Iterator[FakeRuntimeApi]:
    with FakeRuntimeApi({"app": ["app01", "app02", "app03"]}) as fake:
        yield fake


def member(api: FakeRuntimeApi, **request: object) -> dict:
    client = RuntimeApiClient(api.address)
    return BalancerMember([client], MemberRequest(server="app01", **request)).apply()  # type: ignore[arg-type]


def wait_until(condition: object, seconds: float = 3.0) -> float:
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if condition():  # type: ignore[operator]
            return time.monotonic() - started
        time.sleep(0.005)
    raise AssertionError("condition not met in time")


def test_a_held_server_found_back_in_rotation_is_drained_again_within_a_poll(api: FakeRuntimeApi) -> None:
    member(api, state="drained", hold=30, poll_interval=0.05)
    server = api.server("app01")
    files = HoldFiles.of("app01", [api.address])
    wait_until(lambda: os.path.exists(files.events))

    server.admin = 0  # a reload that did not keep the state
    took = wait_until(lambda: server.admin & FORCED_DRAIN)
    enabled = member(api, state="enabled", check_before_traffic=False, up_timeout=1, poll_interval=0.05)

    assert took < 0.3
    [event] = enabled["held"]
    assert (event["balancer"], event["backend"]) == (api.address, "app")
    assert any("was found back in rotation" in w for w in enabled["warnings"])
    assert not os.path.exists(files.events) and not os.path.exists(files.stop)  # the watcher ended
    assert not server.admin & FORCED_DRAIN  # and did not drain it again after the enable


def test_a_watcher_ends_by_itself_when_its_hold_is_over(api: FakeRuntimeApi) -> None:
    member(api, state="drained", hold=0.3, poll_interval=0.05)
    files = HoldFiles.of("app01", [api.address])

    wait_until(lambda: not os.path.exists(files.events), seconds=5)
    assert stop_watcher(files) == []


def test_check_mode_neither_stops_nor_starts_a_watcher(api: FakeRuntimeApi, tmp_path: Path) -> None:
    client = RuntimeApiClient(api.address)
    request = MemberRequest(server="app01", state="drained", hold=30)
    BalancerMember([client], request, check_mode=True).apply()

    assert not os.path.exists(HoldFiles.of("app01", [api.address]).events)


def test_a_stop_that_comes_at_once_after_the_drain_still_finds_the_watcher(api: FakeRuntimeApi) -> None:
    member(api, state="drained", hold=30, poll_interval=0.05)
    member(api, state="enabled", check_before_traffic=False, up_timeout=1, poll_interval=0.05)
    server = api.server("app01")

    server.admin = 0
    time.sleep(0.3)  # several of a stray watcher's polls
    assert not server.admin & FORCED_DRAIN
    assert not os.path.exists(HoldFiles.of("app01", [api.address]).events)


def test_a_watcher_that_does_not_end_in_time_fails_the_stop_and_still_ends_without_draining(
    api: FakeRuntimeApi,
) -> None:
    member(api, state="drained", hold=30, poll_interval=0.05)
    files = HoldFiles.of("app01", [api.address])
    pid = json.loads(Path(files.events).read_text())["pid"]
    ticks = iter(range(10_000))
    os.kill(pid, signal.SIGSTOP)  # as a watcher whose balancer does not answer
    try:
        with pytest.raises(TimeoutExpiredError, match=f"pid {pid}"):
            stop_watcher(files, clock=lambda: float(next(ticks)), sleep=lambda seconds: None)
        assert os.path.exists(files.stop)  # the request stays for the watcher's next look
        api.server("app01").admin = 0  # back in rotation on purpose (an enable by another way)
    finally:
        os.kill(pid, signal.SIGCONT)

    wait_until(lambda: not process_runs(pid))
    assert not api.server("app01").admin & FORCED_DRAIN  # it saw the request before draining again
    assert stop_watcher(files) == []
    assert not os.path.exists(files.stop)


def test_an_ended_process_not_yet_reaped_does_not_run() -> None:
    child = os.fork()
    if child == 0:
        os._exit(0)
    try:
        wait_until(lambda: not process_runs(child))
    finally:
        os.waitpid(child, 0)
