"""The contract of the HAProxy runtime-API fake (tests/fakes/lb_fake_runtime.py): one scenario of the
collection's own code (BalancerMember, MemberReport, RuntimeApiClient) runs against the lab's real HAProxy
and against the fake, and a client sees the same at every step.

What is compared leaves out what depends on time (session and response counters, check durations, how
long a drain or an enable took) and where things listen (socket, server address)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from ansible_collections.fleet.rollout.plugins.module_utils._balancer import BalancerMember
from ansible_collections.fleet.rollout.plugins.module_utils._errors import FleetRolloutError
from ansible_collections.fleet.rollout.plugins.module_utils._haproxy import RuntimeApiClient, ServerSnapshot
from ansible_collections.fleet.rollout.plugins.module_utils._member import MemberRequest
from ansible_collections.fleet.rollout.plugins.module_utils._member_report import MemberReport

from lab.fleet import Lab
from lab.haproxy import BACKEND
from lab.traffic import Traffic
from tests.fakes.lb_fake_runtime import FakeRuntimeApi, FakeTime
from tests.integration.lb_playbooks import stat

SERVER = "app01"
HOSTS = ("app01", "app02", "app03")
LAB_WEIGHT = 100  # the lab's HAProxy configures every server with "weight 100"
REQUEST_SECONDS = 1.5  # the request in flight on the server when it is first drained
FAKE_REQUEST_TICKS = 8  # the same request on the fake: 8 polls of 0.2 s
IN_FLIGHT_STEP = "drain with a request in flight"
BROKEN_STEP = "enable a server whose health check fails"

# The scenario, in order: a step's lb_member request, or None for a read of the server (lb_member_info).
SCENARIO: tuple[tuple[str, dict[str, Any] | None], ...] = (
    ("read at start", None),
    (IN_FLIGHT_STEP, {"state": "drained"}),
    ("read drained", None),
    ("drain again", {"state": "drained"}),
    ("enable from drain", {"state": "enabled"}),
    ("read enabled", None),
    ("set half weight", {"weight": "50%"}),
    ("read at half weight", None),
    ("drain to maintenance", {"state": "drained", "drain_to": "maint"}),
    ("read in maintenance", None),
    ("enable from maintenance", {"state": "enabled"}),
    ("read enabled again", None),
    ("enable again", {"state": "enabled"}),
    ("maintenance", {"state": "maintenance"}),
    (BROKEN_STEP, {"state": "enabled", "up_timeout": 2}),
    ("read failing", None),
    ("drain a server whose health check fails", {"state": "drained"}),
    ("read drained and failing", None),
)
# Of a read: not the counters (scur, qcur, hrsp_5xx), the check's timing (check_duration_ms,
# check_in_progress) nor where things listen (balancer, address).
READ_KEYS = (
    "backend",
    "server",
    "status",
    "admin_state",
    "op_state",
    "admin_flags",
    "weight",
    "initial_weight",
    "check_enabled",
    "check_status",
    "check_code",
    "check_description",
    "last_check",
    "backup",
)
# Of an lb_member result's member: not its timings nor the counters it started with.
MEMBER_KEYS = (
    "backend",
    "server",
    "status_before",
    "status_after",
    "admin_state_before",
    "admin_state_after",
    "weight_before",
    "weight_after",
    "commands",
    "sessions_killed",
)
CHECK_IN_PROGRESS_RETRIES = 20


@dataclass(frozen=True)
class Target:
    """A runtime API the scenario runs against, the clock the collection waits on there, and what to do
    to the server before some steps (IN_FLIGHT_STEP: a request in flight; BROKEN_STEP: its app's health
    check fails from then on)."""

    client: RuntimeApiClient
    clock: Callable[[], float]
    sleep: Callable[[float], None]
    before_step: dict[str, Callable[[], None]]


def read(target: Target) -> dict[str, Any]:
    """What lb_member_info reports of the server, read when no health check runs (one running hides the
    check's code, and whether it runs at a given moment is a matter of timing), and what the collection
    concludes from it."""
    for _ in range(CHECK_IN_PROGRESS_RETRIES):
        [row] = MemberReport([target.client], backends=[BACKEND], servers=[SERVER]).collect()
        if not row["check_in_progress"]:
            break
        time.sleep(0.01)
    snapshot = ServerSnapshot(**{key: value for key, value in row.items() if key != "balancer"})
    return {
        **{key: row[key] for key in READ_KEYS},
        "up": snapshot.up,
        "serving": snapshot.serving,
        "out_of_rotation": snapshot.out_of_rotation,
    }


def failure(target: Target, error: FleetRolloutError) -> dict[str, Any]:
    """What lb_member fails with: the error, its message (cut before the check's status, whose code is
    empty while a check runs: timing) and what it says of the member."""
    message = error.message.replace(target.client.address, "<socket>").split(", check ")[0]
    return {
        "error": type(error).__name__,
        "message": message,
        "changed": error.details.get("changed"),
        "members": [{key: member[key] for key in MEMBER_KEYS} for member in error.details.get("members", [])],
    }


def apply(target: Target, request: dict[str, Any], in_flight: bool) -> dict[str, Any]:
    """What lb_member returns for ``request``, without its timings; with a request in flight, whether the
    drain saw it and waited for it."""
    try:
        result = BalancerMember(
            [target.client],
            MemberRequest(server=SERVER, **request),
            clock=target.clock,
            sleep=target.sleep,
        ).apply()
    except FleetRolloutError as error:
        return failure(target, error)
    [member] = result["members"]
    seen = {
        "changed": result["changed"],
        "warnings": result["warnings"],
        **{key: member[key] for key in MEMBER_KEYS},
        "timings_reported": [key for key in ("drain_seconds", "up_seconds") if member[key] is not None],
    }
    if in_flight:
        seen["waited_for_the_request"] = member["sessions_at_start"] > 0 and member["drain_seconds"] > 0
    return seen


def run_scenario(target: Target) -> dict[str, dict[str, Any]]:
    """What a client sees at each step of the scenario, by step."""
    seen: dict[str, dict[str, Any]] = {}
    for step, request in SCENARIO:
        target.before_step.get(step, lambda: None)()
        seen[step] = read(target) if request is None else apply(target, request, step == IN_FLIGHT_STEP)
    return seen


@contextmanager
def fake_target() -> Iterator[Target]:
    """The fake, configured as the lab's HAProxy is (three servers of weight 100), on the fake's clock."""
    with FakeRuntimeApi({BACKEND: list(HOSTS)}) as fake:
        for name in HOSTS:
            server = fake.server(name)
            server.weight = server.initial_weight = LAB_WEIGHT
        fake_time = FakeTime(fake)

        def put_request_in_flight() -> None:
            fake.server(SERVER).sessions = [FAKE_REQUEST_TICKS]

        def break_health_check() -> None:
            fake.server(SERVER).healthy = False

        before_step = {IN_FLIGHT_STEP: put_request_in_flight, BROKEN_STEP: break_health_check}
        yield Target(RuntimeApiClient(fake.address), fake_time.clock, fake_time.sleep, before_step)


def slow_request_then_steady_traffic(lab: Lab, slow: Traffic, steady: Traffic, deadline: float = 10) -> None:
    """Start ``slow`` (a few slow requests, round robin over the hosts), wait until the server has one,
    then start ``steady``: started before, its short requests could be the session seen instead."""
    slow.start()
    end = time.monotonic() + deadline
    while stat(lab, SERVER)["scur"] in ("", "0"):
        assert time.monotonic() < end, f"no slow request reached {SERVER}"
        time.sleep(0.02)
    steady.start()


@pytest.mark.lab(hosts=len(HOSTS))
def test_the_fake_sees_each_step_as_the_real_haproxy_does(lab: Lab) -> None:
    lb = lab.balancers[0]
    # Two requests per host, so that the server gets one whatever the round robin's position.
    slow = Traffic(lb.frontend_url, rate=20, seconds=0.3, path=f"/slow?seconds={REQUEST_SECONDS}")
    steady = Traffic(lb.frontend_url, rate=20, seconds=300)  # stopped once the scenario ends
    try:
        real = run_scenario(
            Target(
                RuntimeApiClient(str(lb.socket)),
                time.monotonic,
                time.sleep,
                {
                    IN_FLIGHT_STEP: lambda: slow_request_then_steady_traffic(lab, slow, steady),
                    # In maintenance by then: no user request reaches the app while it restarts.
                    BROKEN_STEP: lambda: lab.install(SERVER, "v2", health_fail=True),
                },
            )
        )
    finally:
        users, slowed = steady.stop(), slow.wait()
    with fake_target() as target:
        fake = run_scenario(target)

    assert list(fake) == list(real)
    differing = [step for step in real if fake[step] != real[step]]
    for step in differing:  # the first one fails, with pytest's diff of what the fake and HAProxy saw
        assert fake[step] == real[step], f"the fake differs from HAProxy at {step!r} (of {differing})"
    # What users saw of the real one: no request failed while the server was drained, put in maintenance
    # and enabled (twice), nor while its failing health check kept it out.
    assert users.sent > 0
    assert users.failed == 0, users.failures()[:5]
    assert slowed.failed == 0, slowed.failures()[:5]
