"""What the canary wave does besides its analysis, on the lab with traffic: its traffic share
(rollout_canary_weight), manual promotion (fleet.rollout.promote / abort), the health check failing a
broken host in seconds, and a release that errs on one later host only."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import time
from pathlib import Path

import pytest

from lab.fleet import Lab
from lab.haproxy import show_stat
from lab.traffic import Traffic
from tests.support import (
    VENV_BIN,
    ansible_env,
    deploy_report,
    deploy_under_traffic,
    fleet_state,
    run_deploy,
    run_playbook,
)

RATE = 150.0


def start_deploy(lab: Lab, version: str, *extra: str) -> subprocess.Popen[str]:
    command = [str(VENV_BIN / "ansible-playbook"), "-i", str(lab.inventory), "fleet.rollout.deploy"]
    command += ["-e", f"deploy_artifact={lab.build(version)}", "-e", f"deploy_version={version}", *extra]
    return subprocess.Popen(
        command, env=ansible_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def wait_until_held(lab: Lab, version: str, deadline: float = 120) -> None:
    """The canary is on the new release and UP, and the rollout goes no further."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        state = fleet_state(lab)
        if state["app01"] == (version, "UP"):
            break
        time.sleep(0.2)
    else:
        raise AssertionError(f"the canary never came up on {version}: {fleet_state(lab)}")
    time.sleep(3)  # held: no other host moves meanwhile
    assert {name: release for name, (release, _) in fleet_state(lab).items() if release == version} == {
        "app01": version
    }


@pytest.mark.lab(hosts=10)
def test_the_canary_gets_the_share_of_traffic_its_weight_asks_for(lab: Lab) -> None:
    """Measured while the canary is held for promotion after its bake, at its reduced weight: 10% of
    weight 100 against nine servers of weight 100 is 10 / 910 of the requests."""
    traffic = Traffic(lab.frontend_url, rate=RATE, seconds=600)
    traffic_started = time.monotonic()
    traffic.start()
    rollout = start_deploy(
        lab,
        "v2",
        "-e",
        "rollout_canary_weight=10",
        "-e",
        "rollout_canary_bake=2",
        "-e",
        '{"deploy_analysis": {"inconclusive": "pass"}}',
        "-e",
        "rollout_promotion=manual",
    )
    try:
        wait_until_held(lab, "v2")
        held_from = time.monotonic() - traffic_started
        time.sleep(10)
        held_to = time.monotonic() - traffic_started
        assert run_playbook(Path("fleet.rollout.promote"), lab.inventory).rc == 0
        output, _ = rollout.communicate(timeout=180)
    finally:
        if rollout.poll() is None:
            rollout.kill()
        result = traffic.stop()
    assert rollout.returncode == 0, output[-3000:]
    during = [r for r in result.records if held_from <= r.t < held_to]
    share = sum(r.host == "app01" for r in during) / len(during)
    asked = 10 / 910
    assert len(during) > RATE * 8
    assert abs(share - asked) <= 0.3 * asked, (share, asked, len(during))
    assert result.failed == 0, result.failures()[:5]
    assert {row["svname"]: int(row["weight"]) for row in show_stat(lab.balancers[0].socket)} == {
        h.name: 100 for h in lab.hosts
    }


@pytest.mark.lab(hosts=4)
@pytest.mark.parametrize("decision", ["promote", "abort"])
def test_manual_promotion_holds_until_promote_or_abort(lab: Lab, decision: str) -> None:
    rollout = start_deploy(lab, "v2", "-e", "rollout_promotion=manual", "-e", "rollout_window=2")
    try:
        wait_until_held(lab, "v2")
        # from another shell: the same collection, the same lock directory (the lab's inventory)
        decided = run_playbook(Path(f"fleet.rollout.{decision}"), lab.inventory)
        assert decided.rc == 0, decided.stdout[-2000:]
        output, _ = rollout.communicate(timeout=180)
    finally:
        if rollout.poll() is None:
            rollout.kill()
    if decision == "promote":
        assert rollout.returncode == 0, output[-3000:]
        assert fleet_state(lab) == {h.name: ("v2", "UP") for h in lab.hosts}
    else:
        assert rollout.returncode != 0, output[-3000:]
        assert "aborted by fleet.rollout.abort" in output, output[-3000:]
        assert fleet_state(lab) == {h.name: ("v1", "UP") for h in lab.hosts}
    assert not list((lab.state_dir / "locks").glob("*.lock"))


@pytest.mark.lab(hosts=3)
def test_an_inconclusive_bake_holds_for_promotion_when_asked_to(lab: Lab) -> None:
    hold = json.dumps({"deploy_analysis": {"inconclusive": "hold"}})
    rollout = start_deploy(lab, "v2", "-e", "rollout_canary_bake=2", "-e", hold)  # no traffic: no verdict
    try:
        wait_until_held(lab, "v2")
        assert run_playbook(Path("fleet.rollout.promote"), lab.inventory).rc == 0
        output, _ = rollout.communicate(timeout=180)
    finally:
        if rollout.poll() is None:
            rollout.kill()
    assert rollout.returncode == 0, output[-3000:]
    assert "release analysis inconclusive" in output, output[-3000:]
    assert fleet_state(lab) == {h.name: ("v2", "UP") for h in lab.hosts}


@pytest.mark.lab(hosts=3)
def test_promote_without_a_running_rollout_says_so(lab: Lab) -> None:
    run = run_playbook(Path("fleet.rollout.promote"), lab.inventory)
    assert run.rc != 0
    assert "no rollout of app holds the lock" in run.stdout, run.stdout[-2000:]


@pytest.mark.lab(hosts=10)
def test_a_release_whose_health_answers_500_fails_its_host_within_seconds(lab: Lab) -> None:
    started = time.monotonic()
    run, traffic = deploy_under_traffic(lab, "v2", "-e", "rollout_window=3", rate=RATE, health_fail=True)
    took = time.monotonic() - started
    assert run.rc != 0
    assert "ROLLOUT: 0 ok, 1 failed, 9 not started, of 10" in run.stdout, run.stdout[-3000:]
    # the health check's own account: failed fast, a few attempts in well under 3 s after the restart
    failed_after = re.search(r"failing fast instead of waiting .*?\(\d+ attempts in ([0-9.]+)s\)", run.stdout)
    assert failed_after, run.stdout[-3000:]
    assert float(failed_after.group(1)) < 3.0
    assert took < 120  # a sanity bound: nothing waited for the 60 s health deadline
    assert traffic.failed == 0, traffic.failures()[:5]
    assert fleet_state(lab) == {h.name: ("v1", "UP") for h in lab.hosts}


@pytest.mark.lab(hosts=10)
def test_a_release_failing_on_one_later_host_is_caught_and_the_fleet_reverted(
    lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANSIBLE_CALLBACKS_ENABLED", "fleet.rollout.rollout_journal")  # its phases' times
    run, traffic = deploy_under_traffic(
        lab,
        "v2",
        "-e",
        f"rollout_journal_dir={tmp_path / 'journal'}",
        "-e",
        "rollout_window=3",
        "-e",
        "rollout_canary_bake=30",
        # The default clear_below (10%) clears a host erring at 8%, as documented (the final check
        # catches it then, about one run in four): a user who wants an 8% host held at the gates says so.
        "-e",
        '{"deploy_analysis": {"clear_below": 5}}',
        rate=RATE,
        error_rate=0.08,
        error_hosts=["app05"],
    )
    assert run.rc != 0, run.stdout[-3000:]
    report = deploy_report(run)
    assert report["result"].startswith("halted"), report
    # caught by a later host's admission gate, before that host left rotation
    gated = [host for host, step in report["failed"].items() if step.startswith("Judge the release")]
    assert gated and all("canary app05: " in report["reasons"][h] for h in gated), report
    # every moved host went back; beyond app05, only hosts admitted before app05 was back in rotation
    # (the window's, or more when app05 was slower than they were) and at most one after it
    assert "app05" in report["reverted"], report
    (journal_file,) = (tmp_path / "journal").glob("*.json")
    journal = json.loads(journal_file.read_text())
    phases = {host: entry["phases"] for host, entry in journal["hosts"].items()}
    moved_at = min(p["ended_at"] for p in phases["app05"] if p["phase"] == "enable")
    beyond = set(report["reverted"]) - {f"app{n:02}" for n in range(1, 6)}
    # admitted: when its gate's judgement started (the hosts it holds for are read then); a gate that
    # started before app05 was back may end after it, holding for the hosts moved before
    admitted_after = [
        h for h in beyond if min(p["started_at"] for p in phases[h] if p["phase"] == "judge") > moved_at
    ]
    print(f"moved beyond app05: {sorted(beyond)}, admitted after it was back: {admitted_after}")
    assert len(admitted_after) <= 1, (admitted_after, moved_at, report)
    assert fleet_state(lab) == {h.name: ("v1", "UP") for h in lab.hosts}
    assert all(r.host == "app05" for r in traffic.failures()), traffic.failures()[:5]


def prometheus_settings(url: str) -> str:
    """deploy_prometheus: the canary's share of 5xx answers over the last 10 s, templated per host."""
    server = "{{ deploy_lb_server }}"
    query = (
        f'sum(rate(haproxy_server_http_responses_total{{proxy="app",server="{server}",code="5xx"}}[10s]))'
        f' / sum(rate(haproxy_server_http_responses_total{{proxy="app",server="{server}"}}[10s]))'
    )
    settings = {
        "url": url,
        "query": query,
        "condition": "value is none or value < 0.05",
        "interval": 1,
        "bake": 20,
    }
    return json.dumps({"deploy_prometheus": settings, "deploy_analysis": {"enabled": False}})


@pytest.mark.lab(hosts=5, prometheus=True)
def test_a_prometheus_query_on_the_canarys_5xx_rate_halts_a_flaky_canary(lab: Lab) -> None:
    assert lab.prometheus_url
    run, traffic = deploy_under_traffic(
        lab,
        "v2",
        "-e",
        prometheus_settings(lab.prometheus_url),
        "-e",
        "rollout_window=2",
        rate=RATE,
        error_rate=0.2,
    )
    assert run.rc != 0, run.stdout[-3000:]
    report = deploy_report(run)
    assert report["failed"] == {"app01": "Bake the canary under the Prometheus analysis"}, report
    assert "condition 'value is none or value < 0.05' false" in report["reasons"]["app01"], report
    assert fleet_state(lab) == {h.name: ("v1", "UP") for h in lab.hosts}
    assert all(r.host == "app01" for r in traffic.failures()), traffic.failures()[:5]


@pytest.mark.lab(hosts=3)
def test_a_prometheus_that_does_not_answer_stops_the_rollout_before_any_host_is_touched(lab: Lab) -> None:
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}"
    run = run_deploy(lab.inventory, "v2", lab.build("v2"), "-e", prometheus_settings(url))
    assert run.rc != 0
    assert f"Prometheus at {url} did not answer" in run.stdout, run.stdout[-3000:]
    assert fleet_state(lab) == {h.name: ("v1", "UP") for h in lab.hosts}
    for host in lab.hosts:
        assert not (host.root / "releases" / "v2").exists(), f"{host.name} was touched"


@pytest.mark.lab(hosts=3)
@pytest.mark.parametrize(
    ("setting", "named"),
    [
        (
            {"deploy_analysis": {"error_margin": 150}},
            "error_margin must be a percentage from 0 to 100, got 150.0",
        ),
        ({"rollout_canary_bake": -5}, "rollout_canary_bake a number of seconds (0 or more), got -5"),
    ],
    ids=["threshold-150", "negative-bake"],
)
def test_bad_analysis_settings_fail_before_any_host_is_touched(
    lab: Lab, setting: dict[str, object], named: str
) -> None:
    run = run_deploy(lab.inventory, "v2", lab.build("v2"), "-e", json.dumps(setting))
    assert run.rc != 0
    assert named in run.stdout, run.stdout[-3000:]
    assert fleet_state(lab) == {h.name: ("v1", "UP") for h in lab.hosts}
    for host in lab.hosts:
        assert not (host.root / "releases" / "v2").exists(), f"{host.name} was touched"
