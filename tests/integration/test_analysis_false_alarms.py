"""No false alarms: release_analysis on a canary no worse than its baseline, under real traffic, twenty
times over, where both fail a share of their requests (the case a threshold alone would get wrong)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.fleet import Lab
from lab.traffic import Traffic
from tests.integration.lb_playbooks import Playbook

MODULE = "fleet.rollout.release_analysis"
RUNS = 20


@pytest.mark.lab(hosts=5)
def test_twenty_bakes_of_an_equally_flaky_canary_all_pass(lab: Lab, tmp_path: Path) -> None:
    for host in lab.hosts:  # the fleet fails 2% of its requests, the canary's new release as well
        lab.install(host.name, "v2" if host.name == "app01" else "v1-flaky", error_rate=0.02)
    lab.wait_all_up()
    playbook = Playbook(tmp_path, lab)
    for run in range(RUNS):
        playbook.call(
            f"bake{run}",
            MODULE,
            socket=[str(lab.balancers[0].socket)],
            backends=["app"],
            canary=["app01"],
            bake=20,
            interval=0.5,
            min_responses=60,
            inconclusive="fail",  # thin evidence would count as an alarm too
        )
    load = Traffic(lab.frontend_url, rate=150, seconds=600).start()
    try:
        done, results = playbook.run()
    finally:
        load.stop()
    assert done.rc == 0, done.stdout[-3000:]
    verdicts = [results[f"bake{run}"] for run in range(RUNS)]
    assert [v["verdict"] for v in verdicts] == ["pass"] * RUNS, [v["reason"] for v in verdicts]
    # the canary did fail requests, as the baseline did: the test judged, it did not just see zeros
    assert sum(v["canary"]["errors"] for v in verdicts) > 0
    assert sum(v["baseline"]["errors"] for v in verdicts) > 0
