"""fleet.rollout.release_analysis against the lab's real HAProxy and real app processes, under real traffic
through the balancer, through real ansible-playbook runs."""

from __future__ import annotations

import re
import socket
import typing as t
from pathlib import Path

import pytest

from lab.fleet import Lab
from lab.traffic import Traffic, TrafficResult
from tests.integration.lb_playbooks import Playbook, timed_run, wait_for_status
from tests.support import traffic

MODULE = "fleet.rollout.release_analysis"
CANARY = "app03"
RATE = 120.0  # requests per second through the frontend: 20 a second to each of 6 servers


def analysis(lab: Lab, **options: t.Any) -> dict[str, t.Any]:
    """The module's arguments for the lab's first balancer and its backend, with ``options``."""
    return {"socket": [str(lab.balancers[0].socket)], "backends": ["app"], **options}


def put_on_canary(lab: Lab, **behaviour: t.Any) -> None:
    """Release v2 with ``behaviour`` on the canary host alone, restarted, and wait for it to be back UP."""
    lab.install(CANARY, "v2", **behaviour)
    wait_for_status(lab, CANARY, "UP")


def as_module(playbook: Playbook, name: str, **args: t.Any) -> Playbook:
    """``playbook.call`` of the module, run as a module process on the target: a task environment keeps
    the action plugin from running the module's code in the controller (see _controller_side)."""
    playbook.call(name, MODULE, **args)
    task, _record = playbook.tasks[-2:]
    task["environment"] = {"FLEET_ROLLOUT_TEST": "as a module"}
    return playbook


def others(lab: Lab) -> list[str]:
    return [host.name for host in lab.hosts if host.name != CANARY]


def failing_verdict(
    lab: Lab, tmp_path: Path, name: str, bake: int, **behaviour: t.Any
) -> tuple[dict[str, t.Any], TrafficResult, float]:
    """The module's task ``name`` on a canary with v2 of ``behaviour``, under RATE traffic for up to ``bake``
    seconds: it fails the release (failed, ignored, nothing changed). Returns its result, what the users
    saw and the playbook's wall time."""
    put_on_canary(lab, **behaviour)
    playbook = Playbook(tmp_path, lab).call(name, MODULE, **analysis(lab, canary=[CANARY], bake=bake))

    with traffic(lab, RATE) as load:
        done, results, wall = timed_run(playbook)
    result = results[name]

    assert done.recap("localhost")["ignored"] == 1, done.stdout
    assert result["failed"] is True and result["changed"] is False
    assert result["verdict"] == "fail"
    return result, load.wait(), wall


@pytest.mark.lab(hosts=6)
def test_a_canary_answering_8_percent_500s_fails_fast_with_the_evidence(lab: Lab, tmp_path: Path) -> None:
    result, seen, wall = failing_verdict(lab, tmp_path, "bad", bake=30, error_rate=0.08)

    assert "worse" in result["reason"] and result["msg"] == result["reason"]
    assert result["reason"].startswith(f"canary {CANARY}: "), result["reason"]
    assert result["p_value"] < 0.001
    canary, baseline = result["canary"], result["baseline"]
    assert canary["servers"] == [CANARY]
    assert baseline["servers"] == others(lab)
    assert canary["errors"] > 0
    assert baseline["errors"] == 0, baseline
    assert baseline["responses"] > canary["responses"] > 0
    assert canary["error_rate"] == pytest.approx(canary["errors"] / canary["responses"], abs=1e-6)
    # The harm is bounded by the evidence needed: a handful of failed requests, not a 30 s bake's worth.
    assert canary["errors"] <= 15, canary
    assert result["elapsed"] < 15, result
    assert 1 < result["looks"] < 15
    assert wall < 25, f"the playbook took {wall:.1f}s"
    # The users' side agrees: every failed request was a 500 from the canary, none from the baseline.
    failures = seen.failures()
    assert len(failures) >= canary["errors"]
    assert {(f.status, f.host) for f in failures} == {(500, CANARY)}


@pytest.mark.lab(hosts=5)
def test_a_good_release_passes_and_changes_nothing_in_check_mode_too(lab: Lab, tmp_path: Path) -> None:
    put_on_canary(lab)  # v2, a good release
    options = analysis(lab, canary=[CANARY], bake=25, interval=0.5, min_responses=100)
    twice = Playbook(tmp_path / "run", lab).call("first", MODULE, **options).call("second", MODULE, **options)
    # one read, returning the canary's own counters alone (what the deploy role's gate keeps of a host)
    twice.call("own", MODULE, **analysis(lab, canary=[CANARY], return_servers=[CANARY], inconclusive="pass"))
    checked = Playbook(tmp_path / "check", lab).call("checked", MODULE, **options)

    with traffic(lab, rate=150):  # 30 a second to each of 5 servers
        done, run_results, _wall = timed_run(twice)
        check_done, check_results, _check_wall = timed_run(checked, "--check")

    for run in (done, check_done):
        assert run.rc == 0, run.stdout
        recap = run.recap("localhost")
        assert (recap["changed"], recap["failed"], recap["ignored"]) == (0, 0, 0), run.stdout
    for result in (run_results["first"], run_results["second"], check_results["checked"]):
        assert result["changed"] is False
        assert result.get("failed", False) is False
        assert result["verdict"] == "pass", result["reason"]
        assert "not worse" in result["reason"]
        assert result["canary"]["servers"] == [CANARY]
        assert result["baseline"]["servers"] == others(lab)
        # a pass needs min_responses canary responses; a clean fleet has no errors on either side
        assert result["canary"]["responses"] >= 100
        assert (result["canary"]["errors"], result["baseline"]["errors"]) == (0, 0)
        assert result["p_value"] >= 0.001
        assert result["looks"] > 1 and result["elapsed"] < 25
        assert {entry["server"] for entry in result["servers"]} == {host.name for host in lab.hosts}
    own = run_results["own"]
    assert own["changed"] is False and own["baseline"]["servers"] == others(lab)
    assert [entry["server"] for entry in own["servers"]] == [CANARY]


@pytest.mark.lab(hosts=6)
def test_a_canary_200ms_slower_fails_on_response_time(lab: Lab, tmp_path: Path) -> None:
    result, seen, _wall = failing_verdict(lab, tmp_path, "slow", bake=20, latency=0.2)

    assert "response time" in result["reason"] and "slower" in result["reason"], result["reason"]
    canary, baseline = result["canary"], result["baseline"]
    assert (canary["errors"], baseline["errors"]) == (0, 0)
    assert 150 <= canary["latency_ms"] <= 400, canary
    assert baseline["latency_ms"] < 50, baseline
    assert baseline["latency_ms"] < result["latency_threshold_ms"] < canary["latency_ms"]
    assert result["elapsed"] < 15, result
    assert seen.failed == 0, seen.failures()[:5]


def ready_only(lab: Lab, servers: list[str]) -> None:
    """``servers`` ready on the balancer (and UP), the others in maintenance."""
    for host in lab.hosts:
        state = "ready" if host.name in servers else "maint"
        lab.runtime("lb1", f"set server app/{host.name} state {state}")
    for server in servers:
        wait_for_status(lab, server, "UP")


@pytest.mark.lab(hosts=4)
def test_the_same_latency_everywhere_is_not_slower_below_haproxys_512_samples(
    lab: Lab, tmp_path: Path
) -> None:
    for host in lab.hosts:  # one release everywhere, 100 ms a request
        lab.install(host.name, "v2", latency=0.1)
    lab.wait_all_up()
    ready_only(lab, others(lab))
    Traffic(lab.frontend_url, rate=250, seconds=3 * 540 / 250).run()  # past HAProxy's 512-sample window
    ready_only(lab, [CANARY])
    Traffic(lab.frontend_url, rate=250, seconds=350 / 250).run()  # below it
    ready_only(lab, [host.name for host in lab.hosts])
    options = analysis(lab, canary=[CANARY], bake=4, inconclusive="pass")
    playbook = Playbook(tmp_path, lab).call("same", MODULE, **options)

    with traffic(lab, rate=100) as load:
        done, results, _wall = timed_run(playbook)
    seen, result = load.wait(), results["same"]

    assert done.rc == 0, done.stdout
    canary, baseline = result["canary"], result["baseline"]
    assert seen.failed == 0, seen.failures()[:5]
    assert 80 <= baseline["latency_ms"] <= 150, baseline
    # what the users saw of the canary, and what HAProxy's own rtime says: the baseline's 100 ms
    assert canary["latency_ms"] == pytest.approx(baseline["latency_ms"], rel=0.15), result["reason"]
    assert result.get("failed", False) is False, result["reason"]


@pytest.mark.lab(hosts=5)
def test_thin_traffic_is_inconclusive_a_warning_or_a_failure_as_asked(lab: Lab, tmp_path: Path) -> None:
    options = analysis(lab, canary=[CANARY], bake=3)
    playbook = Playbook(tmp_path, lab).call("warn", MODULE, inconclusive="warn", **options)
    # As a module its warning goes another way; another min_responses, another text (ansible-playbook
    # shows a warning it already showed only once).
    as_module(playbook, "warn_module", inconclusive="warn", min_responses=300, **options)
    playbook.call("fail", MODULE, inconclusive="fail", **options)

    with traffic(lab, rate=2):  # under 1 a second to each of 5 servers
        done, results, _wall = timed_run(playbook)
    warned, warned_module, failed = results["warn"], results["warn_module"], results["fail"]

    recap = done.recap("localhost")
    assert (recap["changed"], recap["failed"], recap["ignored"]) == (0, 0, 1), done.stdout
    output = done.stdout + done.stderr
    warnings = re.findall(r"\[WARNING\]: release analysis inconclusive: (.*)", output)
    assert len(warnings) == 2, output
    for result, needed in ((warned, 200), (warned_module, 300)):
        assert result.get("failed", False) is False and result["changed"] is False
        assert result["verdict"] == "inconclusive"
        assert result["reason"].endswith(f"too few responses to judge (at least {needed} needed)")
        assert result["reason"] in warnings, (result["reason"], warnings)
    assert failed["failed"] is True and failed["changed"] is False
    assert failed["verdict"] == "inconclusive"
    assert failed["msg"].startswith("no verdict within the bake of 3s: "), failed["msg"]
    assert failed["msg"].endswith("too few responses to judge (at least 200 needed)")
    for result in (warned, warned_module, failed):
        assert 0 < result["canary"]["responses"] < 200
        assert 3 <= result["elapsed"] < 6, result
        assert result["looks"] >= 3


@pytest.mark.lab(hosts=3)
def test_bad_input_fails_before_any_read_and_an_unknown_canary_is_named(lab: Lab, tmp_path: Path) -> None:
    # A socket that only listens: had the module connected, the connection would wait in its backlog.
    listener_path = tmp_path / "listener.sock"
    bad_margin = {"socket": [str(listener_path)], "canary": [CANARY], "error_margin": 150}
    unknown_canary = analysis(lab, canary=["app99"])
    playbook = Playbook(tmp_path / "play", lab).call("margin", MODULE, **bad_margin)
    playbook.call("unknown", MODULE, **unknown_canary)
    as_module(playbook, "margin_module", **bad_margin)
    as_module(playbook, "unknown_module", **unknown_canary)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(str(listener_path))
        listener.listen(8)
        done, results, _wall = timed_run(playbook, "-vvv")
        listener.setblocking(False)
        with pytest.raises(BlockingIOError):
            listener.accept()  # nobody connected

    assert done.recap("localhost")["ignored"] == 4, done.stdout[-3000:]
    assert done.stdout.count("AnsiballZ_release_analysis.py") > 0  # the _module tasks were modules
    for margin in (results["margin"], results["margin_module"]):
        assert margin["failed"] is True and margin["changed"] is False
        assert "error_margin" in margin["msg"] and "150" in margin["msg"], margin["msg"]
        assert margin["msg"] == "error_margin must be a percentage from 0 to 100, got 150.0"
        assert margin["error_margin"] == 150
        assert "verdict" not in margin and "servers" not in margin
    for unknown in (results["unknown"], results["unknown_module"]):
        assert unknown["failed"] is True and unknown["changed"] is False
        assert unknown["msg"] == "no server 'app99' in backend app on the balancers", unknown["msg"]
        assert unknown["missing"] == ["app99"]
        assert "verdict" not in unknown and "servers" not in unknown
