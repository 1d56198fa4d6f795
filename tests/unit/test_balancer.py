"""BalancerMember against fake runtime APIs that behave like HAProxy 2.6, on a fake clock."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from ansible_collections.fleet.rollout.plugins.module_utils._balancer import BalancerMember
from ansible_collections.fleet.rollout.plugins.module_utils._errors import (
    CapacityError,
    HealthCheckFailedError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
    TimeoutExpiredError,
)
from ansible_collections.fleet.rollout.plugins.module_utils._haproxy import RuntimeApiClient
from ansible_collections.fleet.rollout.plugins.module_utils._member import CapacityFloor, MemberRequest

from tests.fakes.lb_fake_runtime import FORCED_DRAIN, FORCED_MAINT, FakeRuntimeApi, FakeTime

FOUR = {"app": ["app01", "app02", "app03", "app04"]}


@pytest.fixture
def api() -> Iterator[FakeRuntimeApi]:
    with FakeRuntimeApi(FOUR) as fake:
        yield fake


def run(
    *fakes: FakeRuntimeApi,
    check_mode: bool = False,
    process_runs: Callable[[int], bool] = lambda pid: False,
    state_files: dict[str, str] | None = None,
    **request: Any,
) -> dict[str, Any]:
    clock = FakeTime(*fakes)
    member = BalancerMember(
        [RuntimeApiClient(fake.address) for fake in fakes],
        MemberRequest(**{"server": "app01", **request}),
        check_mode=check_mode,
        clock=clock.clock,
        sleep=clock.sleep,
        process_runs=process_runs,
        state_files=state_files or {},
    )
    return member.apply()


# -- drained ---------------------------------------------------------------------------------------------


def test_drain_waits_for_the_last_session_then_reports_how_long(api: FakeRuntimeApi) -> None:
    api.server("app01").sessions = [3, 5]  # two requests in flight, ending after 3 and 5 ticks

    result = run(api, state="drained")

    assert result["changed"] is True
    [member] = result["members"]
    assert member["sessions_at_start"] == 2
    assert member["drain_seconds"] == pytest.approx(1.0)  # empty from the 5th tick of 0.2 s
    assert (member["status_before"], member["status_after"]) == ("UP", "DRAIN")
    assert member["commands"] == ["set server app/app01 state drain"]
    assert api.set_commands == ["set server app/app01 state drain"]


def test_drain_is_confirmed_by_two_idle_polls_in_a_row(api: FakeRuntimeApi) -> None:
    result = run(api, state="drained")

    stat_polls = [c for c in api.commands if c.startswith("show stat")]
    assert len(stat_polls) >= 1 + 2 + 1  # locate, two idle polls, final look
    assert result["members"][0]["drain_seconds"] == 0


def test_second_identical_drain_changes_nothing_and_sends_nothing(api: FakeRuntimeApi) -> None:
    run(api, state="drained")
    api.received.clear()

    result = run(api, state="drained")

    assert result["changed"] is False
    assert api.set_commands == []
    assert result["members"][0]["commands"] == []


def test_drain_timeout_fails_naming_the_sessions_and_leaves_the_server_drained(api: FakeRuntimeApi) -> None:
    api.server("app01").sessions = [1000]

    with pytest.raises(TimeoutExpiredError, match=r"drain_timeout 1s.*1 sessions") as caught:
        run(api, state="drained", drain_timeout=1)

    assert caught.value.details["changed"] is True
    assert api.server("app01").admin == FORCED_DRAIN


def test_a_drain_undone_while_waiting_is_sent_again_and_said(api: FakeRuntimeApi) -> None:
    # A reload that did not keep the runtime state puts the server back in rotation mid-drain.
    server = api.server("app01")
    server.sessions = [6]
    tick, ticks = api.tick, []

    def tick_then_reload() -> None:
        tick()
        ticks.append(1)
        if len(ticks) == 2:
            server.admin = 0

    api.tick = tick_then_reload  # type: ignore[method-assign]
    result = run(api, state="drained", drain_to="maint")

    assert api.set_commands == [
        "set server app/app01 state drain",
        "set server app/app01 state drain",
        "set server app/app01 state maint",
    ]
    [member] = result["members"]
    assert (member["drain_reasserted"], member["status_after"]) == (1, "MAINT")
    assert "found back in rotation" in result["warnings"][0] and "drained again" in result["warnings"][0]


def test_a_server_drained_before_and_undone_while_waiting_is_drained_again(api: FakeRuntimeApi) -> None:
    server = api.server("app01")
    server.admin, server.sessions = FORCED_DRAIN, [4]
    tick = api.tick

    def tick_then_reload() -> None:
        tick()
        server.admin = 0 if server.sessions == [3] else server.admin

    api.tick = tick_then_reload  # type: ignore[method-assign]
    result = run(api, state="drained")

    assert api.set_commands == ["set server app/app01 state drain"]
    assert result["changed"] is True and result["members"][0]["admin_state_after"] == "drain"


def test_a_drain_timeout_names_the_admin_state_it_saw(api: FakeRuntimeApi) -> None:
    api.server("app01").sessions = [1000]

    with pytest.raises(TimeoutExpiredError, match=r"1 sessions, 0 queued, status DRAIN, admin state drain$"):
        run(api, state="drained", drain_timeout=1)


def reload_after_first_tick(api: FakeRuntimeApi) -> list[int]:
    """The balancer is reloaded (a new process, the drain kept) after one tick; the ticks counted."""
    tick, ticks = api.tick, []

    def tick_then_reload() -> None:
        tick()
        ticks.append(1)
        api.pid = 5000

    api.tick = tick_then_reload  # type: ignore[method-assign]
    return ticks


def test_a_drain_across_a_reload_waits_for_the_previous_process_to_end(api: FakeRuntimeApi) -> None:
    ticks = reload_after_first_tick(api)  # idle at once in the new process, whose counters start at 0

    result = run(api, state="drained", process_runs=lambda pid: pid == 4242 and len(ticks) < 10)

    assert len(ticks) >= 10  # 2 s of polls at 0.2 s: until the previous process was gone
    assert any("waited 1.8s for its previous process" in w and "pid 4242" in w for w in result["warnings"]), (
        result["warnings"]
    )


def test_a_previous_process_still_running_at_drain_timeout_fails_the_drain(api: FakeRuntimeApi) -> None:
    reload_after_first_tick(api)

    with pytest.raises(TimeoutExpiredError, match=r"reloaded during the drain.*still ran.*pid 4242"):
        run(api, state="drained", drain_timeout=1, process_runs=lambda pid: pid == 4242)


def test_a_drain_without_a_reload_does_not_wait_for_any_process(api: FakeRuntimeApi) -> None:
    result = run(api, state="drained", process_runs=lambda pid: True)

    assert result["warnings"] == []
    assert [c for c in api.commands if c == "show info"] == ["show info", "show info"]


def admin_state_saved(text: str, server: str) -> str:
    [row] = [line.split() for line in text.splitlines() if line.split()[3:4] == [server]]
    return row[6]  # srv_admin_state


def test_each_change_is_saved_where_the_balancer_loads_its_state_on_a_reload(
    api: FakeRuntimeApi, tmp_path: Path
) -> None:
    state_file = tmp_path / "server-state"
    drained = run(api, state="drained", state_files={api.address: str(state_file)})
    saved_drained = state_file.read_text()
    run(api, state="enabled", state_files={api.address: str(state_file)})

    assert drained["changed"] is True
    assert saved_drained.startswith("1\n# be_id")  # what `show servers state` answers, whole
    assert admin_state_saved(saved_drained, "app01") == "8"  # forced drain
    assert admin_state_saved(state_file.read_text(), "app01") == "0"  # ready again after the enable


def test_nothing_is_saved_when_nothing_changes(api: FakeRuntimeApi, tmp_path: Path) -> None:
    state_file = tmp_path / "server-state"
    run(api, state="enabled", state_files={api.address: str(state_file)})

    assert not state_file.exists()


def test_drain_timeout_with_shutdown_sessions_kills_and_reports_them(api: FakeRuntimeApi) -> None:
    api.server("app01").sessions = [1000, 1000, 2]

    result = run(api, state="drained", drain_timeout=1, shutdown_sessions=True)

    assert result["members"][0]["sessions_killed"] == 2
    assert "shutdown sessions server app/app01" in api.set_commands


def test_drain_to_maint_waits_for_sessions_before_maintenance(api: FakeRuntimeApi) -> None:
    api.server("app01").sessions = [3]

    result = run(api, state="drained", drain_to="maint")

    assert api.set_commands == ["set server app/app01 state drain", "set server app/app01 state maint"]
    maint_at = api.commands.index("set server app/app01 state maint")
    polls_before = [c for c in api.commands[:maint_at] if c.startswith("show stat")]
    assert len(polls_before) >= 4  # it waited
    assert result["members"][0]["status_after"] == "MAINT"


def test_a_dead_server_drains_although_its_status_never_reads_drain(api: FakeRuntimeApi) -> None:
    server = api.server("app01")
    server.healthy, server.health = False, 0  # app died: HAProxy shows DOWN, and DOWN while draining

    result = run(api, state="drained")

    assert result["members"][0]["status_after"] == "DOWN"
    assert result["members"][0]["admin_state_after"] == "drain"


def test_a_server_in_maintenance_is_already_drained(api: FakeRuntimeApi) -> None:
    api.server("app01").admin = FORCED_MAINT
    assert run(api, state="drained")["changed"] is False
    assert api.set_commands == []


# -- check mode and diff ---------------------------------------------------------------------------------


def test_check_mode_predicts_and_sends_nothing(api: FakeRuntimeApi) -> None:
    api.server("app01").sessions = [1000]

    result = run(api, state="drained", drain_to="maint", check_mode=True)

    assert result["changed"] is True
    assert api.set_commands == []
    assert api.server("app01").admin == 0
    key = f"{api.address} app/app01"
    assert result["diff"] == {
        "before": {key: {"admin_state": "ready", "weight": 1}},
        "after": {key: {"admin_state": "maint", "weight": 1}},
    }
    assert result["members"][0]["commands"] == [
        "set server app/app01 state drain",
        "set server app/app01 state maint",
    ]


def test_check_mode_of_an_enable_does_not_wait(api: FakeRuntimeApi) -> None:
    api.server("app01").admin = FORCED_MAINT
    api.server("app01").healthy = False

    result = run(api, state="enabled", check_mode=True)

    assert result["changed"] is True
    assert result["members"][0]["status_after"] == "UP"
    assert api.set_commands == []


# -- enabled ---------------------------------------------------------------------------------------------


def test_enable_from_maintenance_goes_through_the_health_check_first(api: FakeRuntimeApi) -> None:
    api.server("app01").admin = FORCED_MAINT

    result = run(api, state="enabled")

    assert api.set_commands == [
        "set server app/app01 state drain",
        "set server app/app01 health down",
        "set server app/app01 state ready",
    ]
    [member] = result["members"]
    assert member["status_after"] == "UP"
    assert member["up_seconds"] == pytest.approx(0.4)  # rise 2 checks of 0.2 s
    assert result["changed"] is True


def test_a_failing_server_is_never_served_and_the_error_carries_the_check_status(
    api: FakeRuntimeApi,
) -> None:
    server = api.server("app01")
    server.admin, server.healthy = FORCED_MAINT, False

    with pytest.raises(HealthCheckFailedError, match=r"up_timeout 2s.*DOWN, check L7STS 500") as caught:
        run(api, state="enabled", up_timeout=2)

    assert server.served == 0
    assert caught.value.details["changed"] is True


def test_the_error_carries_the_last_completed_check_when_the_last_look_caught_one_running(
    api: FakeRuntimeApi,
) -> None:
    # HAProxy blanks the code while a check runs: the last completed check is the evidence to report.
    server = api.server("app01")
    server.admin, server.healthy = FORCED_MAINT, False
    tick, ticks = api.tick, []

    def tick_then_start_a_check() -> None:  # from the fifth check on, every look finds one running
        tick()
        ticks.append(1)
        server.check_running = len(ticks) >= 5

    api.tick = tick_then_start_a_check  # type: ignore[method-assign]
    evidence = r"DOWN, check L7STS 500 \(Layer7 wrong status, Internal Server Error\)"
    with pytest.raises(HealthCheckFailedError, match=evidence):
        run(api, state="enabled", up_timeout=2)

    assert server.check_running


def test_without_check_before_traffic_haproxy_serves_a_failing_server_at_once(api: FakeRuntimeApi) -> None:
    # Why check_before_traffic exists: HAProxy puts a server leaving maintenance UP before checking it.
    server = api.server("app01")
    server.admin, server.healthy = FORCED_MAINT, False

    with pytest.raises(HealthCheckFailedError):
        run(api, state="enabled", up_timeout=1, check_before_traffic=False)

    assert server.served > 0


def test_enable_restores_the_configured_weight(api: FakeRuntimeApi) -> None:
    server = api.server("app01")
    server.admin, server.weight, server.initial_weight = FORCED_DRAIN, 0, 100

    result = run(api, state="enabled")

    assert "set server app/app01 weight 100" in api.set_commands
    assert result["members"][0]["weight_after"] == 100
    assert run(api, state="enabled")["changed"] is False


def test_percent_weight_is_idempotent_and_warns_when_it_rounds_to_zero(api: FakeRuntimeApi) -> None:
    api.server("app01").initial_weight = api.server("app01").weight = 100
    assert run(api, weight="10%")["members"][0]["weight_after"] == 10
    assert run(api, weight="10%")["changed"] is False

    result = run(api, server="app02", weight="50%")  # configured weight 1: 50% of it is 0

    assert result["members"][0]["weight_after"] == 0
    assert "rounds down" in result["warnings"][0]


def test_enable_of_an_enabled_up_server_is_not_a_change(api: FakeRuntimeApi) -> None:
    result = run(api, state="enabled")
    assert result["changed"] is False
    assert result["members"][0]["up_seconds"] == 0
    assert api.set_commands == []


# -- capacity --------------------------------------------------------------------------------------------


def test_capacity_floor_refuses_and_says_who_is_up_and_who_is_down(api: FakeRuntimeApi) -> None:
    dead = api.server("app04")
    dead.healthy, dead.health = False, 0

    with pytest.raises(CapacityError) as caught:
        run(api, server="app02", state="drained", min_healthy=3, capacity_timeout=1)

    message = caught.value.message
    assert "3 of 4 servers UP (app01, app02, app03)" in message
    assert "not UP: app04 (DOWN)" in message
    assert "would leave 2, below min_healthy 3 (floor 3)" in message
    assert api.set_commands == []


def test_capacity_floor_allows_the_drain_when_met(api: FakeRuntimeApi) -> None:
    dead = api.server("app04")
    dead.healthy, dead.health = False, 0

    result = run(api, server="app02", state="drained", min_healthy=2)

    assert result["changed"] is True
    assert api.set_commands == ["set server app/app02 state drain"]


def test_capacity_floor_in_percent_rounds_up(api: FakeRuntimeApi) -> None:
    api.server("app04").admin = FORCED_MAINT
    with pytest.raises(CapacityError, match=r"min_healthy 75% \(floor 3\)"):
        run(api, server="app02", state="maintenance", min_healthy="75%", capacity_timeout=0)


def test_capacity_wait_succeeds_when_another_server_returns(api: FakeRuntimeApi) -> None:
    back = api.server("app04")
    back.health = 0  # down now, healthy app: its checks bring it UP within two ticks

    result = run(api, server="app02", state="drained", min_healthy=3, capacity_timeout=5)

    assert result["changed"] is True


def test_capacity_floor_ignores_a_server_that_is_already_down(api: FakeRuntimeApi) -> None:
    for name in ("app01", "app02"):
        api.server(name).healthy, api.server(name).health = False, 0
    assert run(api, state="drained", min_healthy=3, capacity_timeout=0)["changed"] is True


def test_capacity_floor_fails_at_once_in_check_mode(api: FakeRuntimeApi) -> None:
    api.server("app04").admin = FORCED_MAINT
    with pytest.raises(CapacityError) as caught:
        run(api, state="drained", min_healthy=4, check_mode=True)
    assert caught.value.details["waited"] == 0


@pytest.mark.parametrize(("raw", "pool", "needed"), [(3, 4, 3), ("3", 4, 3), ("75%", 4, 3), ("50%", 3, 2)])
def test_capacity_floor_parses(raw: object, pool: int, needed: int) -> None:
    assert CapacityFloor.parse(raw).servers_needed(pool) == needed


# -- where the server is ---------------------------------------------------------------------------------


def test_the_server_is_acted_on_in_every_backend_that_holds_it() -> None:
    with FakeRuntimeApi({"app": ["app01", "app02"], "api": ["app01"], "other": ["app02"]}) as api:
        result = run(api, state="drained")
        assert sorted(m["backend"] for m in result["members"]) == ["api", "app"]
        assert sorted(api.set_commands) == [
            "set server api/app01 state drain",
            "set server app/app01 state drain",
        ]


def test_backends_limits_where_the_server_is_acted_on() -> None:
    with FakeRuntimeApi({"app": ["app01", "app02"], "api": ["app01"]}) as api:
        run(api, state="maintenance", backends=("api",))
        assert api.set_commands == ["set server api/app01 state maint"]


def test_two_balancers_are_drained_together_then_confirmed() -> None:
    with FakeRuntimeApi(FOUR) as lb1, FakeRuntimeApi(FOUR, tcp=True) as lb2:
        lb1.server("app01").sessions = [3]
        lb2.server("app01").sessions = [5]

        result = run(lb1, lb2, state="drained")

        assert [m["drain_seconds"] for m in result["members"]] == [pytest.approx(0.6), pytest.approx(1.0)]
        # lb2 was told to drain before lb1 was first polled: the drains overlap.
        assert lb2.set_commands == ["set server app/app01 state drain"]
        assert lb1.server("app01").admin == lb2.server("app01").admin == FORCED_DRAIN


@pytest.mark.parametrize(
    ("request_args", "match"),
    [
        ({"server": "app09"}, "server 'app09' is not in any backend"),
        ({"backends": ("nosuch",)}, "backend 'nosuch' does not exist"),
        ({"server": "app02", "backends": ("api",)}, "server 'app02' is not in backend api"),
    ],
)
def test_unknown_names_fail_before_any_change(request_args: dict[str, Any], match: str) -> None:
    with FakeRuntimeApi({"app": ["app01", "app02"], "api": ["app01"]}) as api:
        with pytest.raises(NotFoundError, match=match):
            run(api, state="drained", **request_args)
        assert api.set_commands == []


@pytest.mark.parametrize(
    ("request_args", "bad"),
    [
        ({"server": "app01;set server app/app02 state maint"}, ";"),
        ({"server": "app01\nshow stat"}, "\\n"),
        ({"server": "app 01"}, "whitespace"),
        ({"server": "app01#"}, "#"),
        ({"server": "app\x1b01"}, "control character"),
        ({"backends": ("app;x",)}, ";"),
    ],
)
def test_a_bad_name_is_refused_before_a_socket_is_opened(
    api: FakeRuntimeApi, request_args: dict[str, Any], bad: str
) -> None:
    with pytest.raises(InvalidInputError) as caught:
        run(api, state="drained", **request_args)
    assert bad in caught.value.message
    assert api.received == []  # not even a connection


def test_an_operator_socket_is_refused_before_any_change() -> None:
    with FakeRuntimeApi(FOUR, level="operator") as api:
        with pytest.raises(PermissionDeniedError, match="level 'operator'"):
            run(api, state="drained")
        assert api.commands == ["show cli level"]


@pytest.mark.parametrize(
    "request_args",
    [
        {"state": None},
        {"state": "gone"},
        {"drain_to": "nowhere"},
        {"drain_timeout": -1},
        {"poll_interval": 0},
        {"weight": "300"},
        {"min_healthy": "120%"},
    ],
)
def test_bad_parameters_are_refused_before_a_socket_is_opened(
    api: FakeRuntimeApi, request_args: dict[str, Any]
) -> None:
    with pytest.raises(InvalidInputError):
        run(api, **{"state": "drained", **request_args})
    assert api.received == []


def test_the_same_socket_twice_is_refused(api: FakeRuntimeApi) -> None:
    with pytest.raises(InvalidInputError, match="more than once"):
        run(api, api, state="drained")
    assert api.received == []


def test_a_zero_weight_server_does_not_count_as_capacity(api: FakeRuntimeApi) -> None:
    api.server("app04").weight = 0
    with pytest.raises(CapacityError, match=r"not UP: app04 \(weight 0\)"):
        run(api, state="drained", min_healthy=3, capacity_timeout=0)


def test_an_idle_server_is_confirmed_even_with_a_zero_drain_timeout(api: FakeRuntimeApi) -> None:
    result = run(api, state="drained", drain_timeout=0)
    assert result["members"][0]["drain_seconds"] == 0
