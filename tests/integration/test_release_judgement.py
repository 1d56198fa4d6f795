"""The deploy playbook judges a release by what its users see through HAProxy (the canary bake), on the
lab with traffic flowing the whole time."""

from __future__ import annotations

import time

import pytest

from lab.fleet import Lab
from lab.traffic import Traffic, TrafficResult
from tests.support import PlaybookRun, deploy_report, fleet_state, run_deploy

RATE = 150.0
BAKE = ("-e", "rollout_canary_bake=30")


def deploy_under_traffic(
    lab: Lab, version: str, *extra: str, **behaviour: object
) -> tuple[PlaybookRun, TrafficResult]:
    traffic = Traffic(lab.frontend_url, rate=RATE, seconds=600).start()
    try:
        time.sleep(1.0)  # traffic is flowing before the rollout starts
        run = run_deploy(lab.inventory, version, lab.build(version, **behaviour), *BAKE, *extra)
        time.sleep(0.5)
    finally:
        traffic.stop()
    return run, traffic.wait()


@pytest.mark.lab(hosts=10)
def test_a_release_failing_8_percent_of_requests_is_halted_in_the_canary(lab: Lab) -> None:
    run, traffic = deploy_under_traffic(lab, "v2", "-e", "rollout_window=3", error_rate=0.08)
    assert run.rc != 0, run.stdout[-3000:]
    report = deploy_report(run)
    assert report["result"] == "halted", report
    assert report["failed"] == {"app01": "Judge the release from the balancers' counters"}, report
    assert "canary app01: " in report["reasons"]["app01"] and "worse, p < 0.001" in report["reasons"]["app01"]
    assert fleet_state(lab) == {h.name: ("v1", "UP") for h in lab.hosts}
    for host in lab.hosts[1:]:
        assert not (host.root / "releases" / "v2").exists(), f"{host.name} was touched"
    # Harm: the canary's failures until the verdict was significant (about 5 on average, see
    # tests/unit/test_analysis.py), plus the requests in flight while it was taken out.
    assert 0 < traffic.failed <= 20, traffic.failures()[:5]


@pytest.mark.lab(hosts=10)
def test_a_good_release_passes_its_bake_and_no_request_fails(lab: Lab) -> None:
    run, traffic = deploy_under_traffic(lab, "v2", "-e", "rollout_window=3")
    assert run.rc == 0, run.stdout[-3000:]
    report = deploy_report(run)
    assert report["result"] == "complete", report
    assert "not worse" in report["canary_analysis"]["app01"], report
    assert traffic.failed == 0, traffic.failures()[:5]
    assert fleet_state(lab) == {h.name: ("v2", "UP") for h in lab.hosts}


@pytest.mark.lab(hosts=10)
def test_a_release_200ms_slower_is_halted_in_the_canary(lab: Lab) -> None:
    run, traffic = deploy_under_traffic(lab, "v2", "-e", "rollout_window=3", latency=0.2)
    assert run.rc != 0, run.stdout[-3000:]
    report = deploy_report(run)
    assert report["failed"] == {"app01": "Judge the release from the balancers' counters"}, report
    assert "canary app01: response time" in report["reasons"]["app01"], report
    assert "slower" in report["reasons"]["app01"], report
    assert fleet_state(lab) == {h.name: ("v1", "UP") for h in lab.hosts}
    for host in lab.hosts[1:]:
        assert not (host.root / "releases" / "v2").exists(), f"{host.name} was touched"
    assert traffic.failed == 0, traffic.failures()[:5]
