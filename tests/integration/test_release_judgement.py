"""The deploy playbook judges a release by what its users see through HAProxy (the canary bake), on the
lab with traffic flowing the whole time."""

from __future__ import annotations

import pytest

from lab.fleet import Lab
from tests.support import app_pids, deploy_report, deploy_under_traffic, fleet_state

RATE = 150.0
BAKE = ("-e", "rollout_canary_bake=30")


@pytest.mark.lab(hosts=10)
def test_a_release_failing_8_percent_of_requests_is_halted_in_the_canary(lab: Lab) -> None:
    before = app_pids(lab)
    run, traffic = deploy_under_traffic(
        lab, "v2", *BAKE, "-e", "rollout_window=3", rate=RATE, error_rate=0.08
    )
    assert run.rc != 0, run.stdout[-3000:]
    report = deploy_report(run)
    assert report["result"] == "halted", report
    assert report["failed"] == {"app01": "Judge the release from the balancers' counters"}, report
    assert "canary app01: " in report["reasons"]["app01"] and "worse, p < 0.001" in report["reasons"]["app01"]
    assert fleet_state(lab) == {h.name: ("v1", "UP") for h in lab.hosts}
    for host in lab.hosts[1:]:  # staged ahead like every target, but never switched nor restarted
        assert host.service.pid() == before[host.name], f"{host.name} was restarted"
    # Harm: the canary's failures until the verdict was significant (about 5 on average, see
    # tests/unit/test_analysis.py), plus the requests in flight while it was taken out.
    assert 0 < traffic.failed <= 20, traffic.failures()[:5]


@pytest.mark.lab(hosts=10)
def test_a_good_release_passes_its_bake_and_no_request_fails(lab: Lab) -> None:
    run, traffic = deploy_under_traffic(lab, "v2", *BAKE, "-e", "rollout_window=3", rate=RATE)
    assert run.rc == 0, run.stdout[-3000:]
    report = deploy_report(run)
    assert report["result"] == "complete", report
    assert "not worse" in report["canary_analysis"]["app01"], report
    assert traffic.failed == 0, traffic.failures()[:5]
    assert fleet_state(lab) == {h.name: ("v2", "UP") for h in lab.hosts}


@pytest.mark.lab(hosts=10)
def test_a_release_200ms_slower_is_halted_in_the_canary(lab: Lab) -> None:
    before = app_pids(lab)
    run, traffic = deploy_under_traffic(lab, "v2", *BAKE, "-e", "rollout_window=3", rate=RATE, latency=0.2)
    assert run.rc != 0, run.stdout[-3000:]
    report = deploy_report(run)
    assert report["failed"] == {"app01": "Judge the release from the balancers' counters"}, report
    assert "canary app01: response time" in report["reasons"]["app01"], report
    assert "slower" in report["reasons"]["app01"], report
    assert fleet_state(lab) == {h.name: ("v1", "UP") for h in lab.hosts}
    for host in lab.hosts[1:]:  # staged ahead like every target, but never switched nor restarted
        assert host.service.pid() == before[host.name], f"{host.name} was restarted"
    assert traffic.failed == 0, traffic.failures()[:5]
