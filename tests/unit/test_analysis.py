"""Release analysis: the statistics, the counters and the bake, with a scripted balancer and clock."""

from __future__ import annotations

import math
import random
import typing as t

import pytest
from ansible_collections.fleet.rollout.plugins.module_utils._analysis import (
    AnalysisPolicy,
    ServerCounters,
    Traffic,
    binomial_upper_bound,
    binomial_upper_tail,
    interval_traffic,
    judge,
    mean_of_new_samples,
)
from ansible_collections.fleet.rollout.plugins.module_utils._analysis_task import (
    ANALYSIS_ARGUMENT_SPEC,
    AnalysisRequest,
    ReleaseAnalysis,
)
from ansible_collections.fleet.rollout.plugins.module_utils._errors import (
    InvalidInputError,
    NotFoundError,
    ReleaseWorseError,
)
from ansible_collections.fleet.rollout.plugins.module_utils._verdict import FAIL, INCONCLUSIVE, PASS

POLICY = AnalysisPolicy()


def exact_tail(k: int, n: int, p: float) -> float:
    return sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k, n + 1))


@pytest.mark.parametrize(
    ("k", "n", "p"), [(0, 10, 0.1), (1, 10, 0.1), (5, 50, 0.01), (30, 100, 0.3), (3, 3, 0.5)]
)
def test_binomial_tail_is_exact(k: int, n: int, p: float) -> None:
    assert binomial_upper_tail(k, n, p) == pytest.approx(exact_tail(k, n, p), rel=1e-9, abs=1e-15)


def test_upper_bound_of_no_failures_is_the_rule_of_three_kind() -> None:
    # P(0 of n | p) = (1-p)^n = 1 - confidence  =>  p = 1 - (1-confidence)^(1/n)
    assert binomial_upper_bound(0, 2610, 0.999) == pytest.approx(1 - 0.001 ** (1 / 2610), rel=1e-6)
    assert binomial_upper_bound(0, 0, 0.999) == 1.0


@pytest.mark.parametrize(("failures", "responses"), [(1, 40), (3, 500), (23, 291)])
def test_upper_bound_leaves_one_minus_confidence_of_seeing_this_few(failures: int, responses: int) -> None:
    bound = binomial_upper_bound(failures, responses, 0.9)
    assert failures / responses < bound < 1
    assert 1 - binomial_upper_tail(failures + 1, responses, bound) == pytest.approx(0.1, rel=1e-6)


def test_an_eight_percent_canary_fails_with_the_rates_in_the_reason() -> None:
    verdict = judge(Traffic(291, 23), Traffic(2610, 0), POLICY, "canary app01")
    assert verdict.verdict == FAIL
    assert verdict.reason == (
        "canary app01: 23 of 291 responses failed (7.9%) vs baseline: 0 of 2610 responses failed (0.0%): "
        "worse, p < 0.001"
    )


def test_a_clean_canary_passes_once_enough_responses_were_seen() -> None:
    assert judge(Traffic(150, 0), Traffic(2000, 0), POLICY, "c").verdict == INCONCLUSIVE
    assert judge(Traffic(200, 0), Traffic(2000, 0), POLICY, "c").verdict == PASS


def test_a_canary_as_flaky_as_its_baseline_passes() -> None:
    assert judge(Traffic(2000, 20), Traffic(2000, 20), POLICY, "c").verdict == PASS


def test_the_harm_before_a_fail_is_a_handful_of_requests() -> None:
    """An 8% canary against a clean baseline: failed as soon as its errors are significant, which takes
    5 failed requests on average (2 for a canary that fails everything)."""
    rng = random.Random(7)
    worst, harm = 0, []
    for _ in range(200):
        responses = errors = 0
        while judge(Traffic(responses, errors), Traffic(3000, 0), POLICY, "c").verdict != FAIL:
            responses += 1
            errors += rng.random() < 0.08
            assert responses < 400
        worst = max(worst, errors)
        harm.append(errors)
    assert sum(harm) / len(harm) <= 6
    assert worst <= 12
    assert judge(Traffic(2, 2), Traffic(3000, 0), POLICY, "c").verdict == FAIL


def test_no_false_alarm_over_repeated_looks() -> None:
    """Canary and baseline with the same true failure share, judged after every 10 responses."""
    rng = random.Random(12)
    alarms = 0
    for _ in range(300):
        canary = Traffic()
        baseline_errors = sum(rng.random() < 0.01 for _ in range(3000))
        while True:
            errors = sum(rng.random() < 0.01 for _ in range(10))
            canary = canary + Traffic(10, errors)
            verdict = judge(canary, Traffic(3000, baseline_errors), POLICY, "c").verdict
            if verdict != INCONCLUSIVE:
                alarms += verdict == FAIL
                break
    assert alarms == 0


def test_latency_is_judged_by_ratio_and_margin() -> None:
    slow = Traffic(100, 0, latency_weight=250.0 * 100, latency_responses=100)
    fast = Traffic(1000, 0, latency_weight=2.0 * 1000, latency_responses=1000)
    verdict = judge(slow, fast, POLICY, "canary app01")
    assert verdict.verdict == FAIL
    assert "response time 250 ms vs baseline 2 ms" in verdict.reason
    a_bit_slower = Traffic(300, 0, latency_weight=40.0 * 300, latency_responses=300)
    assert judge(a_bit_slower, fast, POLICY, "c").verdict == PASS  # within the 50 ms margin


def haproxy_moving_average(samples: list[int]) -> list[tuple[int, int]]:
    """(rtime, req_tot) after each sample, computed the way HAProxy 2.6 does (swrate_add, swrate_avg)."""
    window, total, out = 512, 0, []
    for count, value in enumerate(samples, start=1):
        # a plain sum for the first 512 samples (HAProxy passes a window of 0 until then)
        total = total + value if count <= window else total - (total + window - 1) // window + value
        shown_over = min(count, window)
        out.append(((total + shown_over - 1) // shown_over, count))
    return out


def test_mean_of_new_samples_undoes_haproxy_moving_average() -> None:
    history = haproxy_moving_average([1] * 5000 + [200] * 60)
    before, now = history[4999], history[-1]
    assert mean_of_new_samples(before[0], before[1], now[0], now[1]) == pytest.approx(200, abs=25)
    young = haproxy_moving_average([3] * 100 + [250] * 50)
    assert mean_of_new_samples(*young[99], *young[-1]) == pytest.approx(250, abs=5)
    crossing = haproxy_moving_average([100] * 350 + [100] * 200)
    assert mean_of_new_samples(*crossing[349], *crossing[-1]) == pytest.approx(100, abs=3)


def test_a_counter_that_went_down_means_the_balancer_restarted() -> None:
    before = ServerCounters(responses=1000, errors=3, requests=1000, rtime_ms=1)
    after_restart = ServerCounters(responses=40, errors=2, requests=40, rtime_ms=1)
    traffic = interval_traffic(before, after_restart)
    assert (traffic.responses, traffic.errors) == (40, 2)


def test_counters_from_a_show_stat_row() -> None:
    row = {"hrsp_2xx": "90", "hrsp_4xx": "3", "hrsp_5xx": "5", "eresp": "1", "econ": "1", "req_tot": "98"}
    assert ServerCounters.from_row(row) == ServerCounters(responses=100, errors=7, requests=98, rtime_ms=0)


class ScriptedBalancer:
    """A balancer whose counters advance by a step per read: server -> (responses, errors) per read."""

    def __init__(self, address: str, steps: dict[str, tuple[int, int]], rtime: dict[str, int] | None = None):
        self.address = address
        self.steps = steps
        self.rtime = rtime or {}
        self.reads = 0

    def show_stat_rows(self, backend: str | None = None) -> list[dict[str, str]]:
        rows = []
        for server, (responses, errors) in self.steps.items():
            answered = responses * self.reads
            failed = errors * self.reads
            rows.append(
                {
                    "pxname": "app",
                    "svname": server,
                    "status": "UP",
                    "hrsp_2xx": str(answered - failed),
                    "hrsp_5xx": str(failed),
                    "req_tot": str(answered),
                    "rtime": str(self.rtime.get(server, 1)),
                }
            )
        self.reads += 1
        return rows


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def params(**overrides: t.Any) -> dict[str, t.Any]:
    values = {name: spec.get("default") for name, spec in ANALYSIS_ARGUMENT_SPEC.items()}
    values.update(socket=["/lb.sock"], canary=["app01"])
    values.update(overrides)
    return values


def analyse(balancers: list[ScriptedBalancer], **overrides: t.Any) -> dict[str, t.Any]:
    clock = FakeClock()
    request = AnalysisRequest.from_params(params(**overrides))
    return ReleaseAnalysis(balancers, request, clock=clock, sleep=clock.sleep).run()  # type: ignore[arg-type]


def test_a_bake_ends_as_soon_as_the_canary_is_worse() -> None:
    steps = {f"app{n:02}": (15, 0) for n in range(2, 11)}
    balancer = ScriptedBalancer("/lb.sock", {"app01": (15, 2), **steps})
    with pytest.raises(ReleaseWorseError) as caught:
        analyse([balancer], bake=60)
    result = caught.value.details
    assert result["verdict"] == FAIL
    assert result["looks"] <= 4
    assert result["canary"]["servers"] == ["app01"]
    assert result["baseline"]["servers"] == sorted(steps)


def test_one_bad_server_among_the_canaries_is_caught_on_its_own() -> None:
    """10% on app05 alone is under 3% over five canaries, not significant for the group: each server is
    judged on its own too."""
    good = {f"app{n:02}": (60, 0) for n in (1, 2, 3, 4)}
    baseline = {f"app{n:02}": (60, 0) for n in range(6, 11)}
    balancer = ScriptedBalancer("/lb.sock", {**good, "app05": (100, 10), **baseline})
    earlier = ReleaseAnalysis([balancer], AnalysisRequest.from_params(params())).read()  # type: ignore[list-item]
    canary = [*good, "app05"]
    since: list[dict[str, t.Any]] = [
        {"server": s, "servers": [e for e in earlier.entries() if e["server"] == s]} for s in canary
    ]
    since.append({"server": None, "servers": earlier.entries()})
    with pytest.raises(ReleaseWorseError, match=r"canary app05: 10 of 100 responses failed .* worse"):
        analyse([balancer], canary=canary, since=since, inconclusive="pass")
    group = judge(Traffic(340, 10), Traffic(300, 0), POLICY, "group")
    assert group.verdict != FAIL


def test_a_settling_gate_reads_once_when_all_is_well_and_holds_while_suspicious() -> None:
    clean = ScriptedBalancer("/lb.sock", {"app01": (5, 0), "app02": (15, 0), "app03": (15, 0)})
    result = analyse([clean], bake=60, settle=True, inconclusive="pass")
    assert result["looks"] == 1
    leaning = ScriptedBalancer("/lb.sock", {"app01": (5, 2), "app02": (150, 0), "app03": (150, 0)})
    earlier = ReleaseAnalysis([leaning], AnalysisRequest.from_params(params())).read()  # type: ignore[list-item]
    since = [
        {"server": "app01", "servers": earlier.entries()},
        {"server": None, "servers": earlier.entries()},
    ]
    with pytest.raises(ReleaseWorseError) as caught:
        analyse([leaning], since=since, bake=60, settle=True, inconclusive="pass")
    assert caught.value.details["looks"] > 1  # 2 failures of 5 lean towards worse, not yet enough


def test_a_settling_check_waits_for_each_servers_responses_but_not_for_traffic_that_never_comes() -> None:
    flowing = ScriptedBalancer("/lb.sock", {"app01": (10, 0), "app02": (10, 0), "app03": (10, 0)})
    result = analyse([flowing], canary=["app01", "app02"], bake=60, settle=True, min_server_responses=50)
    assert result["looks"] == 6  # 5 intervals of 10 responses each, then settled
    idle = ScriptedBalancer("/lb.sock", {"app01": (0, 0), "app02": (0, 0), "app03": (0, 0)})
    result = analyse([idle], canary=["app01", "app02"], bake=60, settle=True, min_server_responses=50)
    assert result["looks"] == 2 and result["elapsed"] <= 1.5
    result = analyse([idle], canary=["app01", "app02"], bake=60, settle=True, clear_below=10.0)
    assert result["looks"] == 2 and result["elapsed"] <= 1.5


def test_a_settling_gate_holds_until_each_held_server_is_cleared() -> None:
    """clear_below 10: a clean server is cleared after 22 responses (0.9^22 < 0.1), app02 (last moved,
    not held) is not waited for, and a server that errs is held until it fails."""
    clean = ScriptedBalancer("/lb.sock", {"app01": (5, 0), "app02": (0, 0), "app03": (15, 0)})
    held = dict(canary=["app01", "app02"], hold_for=["app01"], bake=60, settle=True, inconclusive="pass")
    result = analyse([clean], clear_below=10.0, **held)
    assert result["looks"] == 6 and result["canary"]["responses"] == 25  # 20 is not yet enough
    assert analyse([clean], **held)["looks"] == 1  # without clear_below: nothing to clear
    erring = ScriptedBalancer("/lb.sock", {"app01": (12, 1), "app02": (0, 0), "app03": (150, 0)})
    with pytest.raises(ReleaseWorseError, match=r"canary app01\b.*worse"):
        analyse([erring], clear_below=10.0, **held)


def test_a_bake_passes_once_enough_responses_were_seen() -> None:
    balancer = ScriptedBalancer("/lb.sock", {"app01": (15, 0), "app02": (15, 0)})
    result = analyse([balancer], bake=60)
    assert result["verdict"] == PASS
    assert result["canary"]["responses"] >= 200
    assert result["elapsed"] < 20


def test_counts_are_summed_over_the_balancers() -> None:
    one = ScriptedBalancer("/lb1.sock", {"app01": (5, 0), "app02": (5, 0)})
    two = ScriptedBalancer("/lb2.sock", {"app01": (5, 0), "app02": (5, 0)})
    result = analyse([one, two], socket=["/lb1.sock", "/lb2.sock"], bake=3, inconclusive="pass")
    assert result["canary"]["responses"] == 2 * 5 * result["looks"] - 10


@pytest.mark.parametrize(("setting", "outcome"), [("pass", "quiet"), ("warn", "warning"), ("fail", "error")])
def test_thin_traffic_is_inconclusive_as_configured(setting: str, outcome: str) -> None:
    balancer = ScriptedBalancer("/lb.sock", {"app01": (1, 0), "app02": (1, 0)})
    if outcome == "error":
        with pytest.raises(ReleaseWorseError, match="no verdict within the bake of 5s"):
            analyse([balancer], bake=5, inconclusive=setting)
        return
    result = analyse([balancer], bake=5, inconclusive=setting)
    assert result["verdict"] == INCONCLUSIVE
    assert bool(result.get("warnings")) == (outcome == "warning")


def test_since_counts_the_canary_from_its_mark_and_the_baseline_from_the_earliest() -> None:
    balancer = ScriptedBalancer("/lb.sock", {"app01": (10, 0), "app02": (10, 0)})
    early = ReleaseAnalysis([balancer], AnalysisRequest.from_params(params(inconclusive="pass"))).read()  # type: ignore[list-item]
    late = ReleaseAnalysis([balancer], AnalysisRequest.from_params(params(inconclusive="pass"))).read()  # type: ignore[list-item]
    since = [
        {"server": None, "servers": early.entries()},
        {"server": "app01", "servers": [e for e in late.entries() if e["server"] == "app01"]},
    ]
    result = analyse([balancer], since=since, inconclusive="pass")
    # reads so far: early (0), late (1), this one (2): the canary counts from late, the baseline from early
    assert result["canary"]["responses"] == 10
    assert result["baseline"]["responses"] == 20


def test_a_canary_server_the_balancers_do_not_have_is_named() -> None:
    balancer = ScriptedBalancer("/lb.sock", {"app01": (1, 0)})
    with pytest.raises(NotFoundError, match="'app09'"):
        analyse([balancer], canary=["app09"])


@pytest.mark.parametrize(
    ("option", "value", "named"),
    [
        ("error_margin", 150.0, "error_margin must be a percentage from 0 to 100, got 150.0"),
        ("bake", -1.0, "bake must be a number of seconds (0 or more), got -1.0"),
        ("confidence", 1.0, "confidence must be a probability"),
        ("max_error_ratio", 0.5, "max_error_ratio must be a ratio of 1 or more"),
        ("canary", ["app 01"], "app 01"),
        ("clear_below", 0.0, "clear_below must be a percentage above 0 and at most 100, got 0.0"),
        ("hold_for", ["app02"], "hold_for names servers that are not in canary: ['app02']"),
    ],
)
def test_bad_input_is_refused_naming_the_value(option: str, value: t.Any, named: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        AnalysisRequest.from_params(params(**{option: value}))
    assert named in caught.value.message


def test_return_servers_keeps_the_result_to_the_servers_named() -> None:
    steps = {f"app{n:02}": (15, 0) for n in range(2, 11)}
    balancer = ScriptedBalancer("/lb.sock", {"app01": (15, 0), **steps})
    every = analyse([balancer], inconclusive="pass")
    assert sorted(entry["server"] for entry in every["servers"]) == ["app01", *sorted(steps)]
    own = analyse(
        [ScriptedBalancer("/lb.sock", {"app01": (15, 0), **steps})],
        inconclusive="pass",
        return_servers=["app03"],
    )
    assert [entry["server"] for entry in own["servers"]] == ["app03"]
    assert own["baseline"]["servers"] == sorted(steps)  # judged on every server all the same


def test_return_servers_refuses_a_name_with_a_newline() -> None:
    with pytest.raises(InvalidInputError, match="server name"):
        AnalysisRequest.from_params(params(return_servers=["app01\nshow"]))
