"""Halt and revert: a release that breaks on the 5th host leaves the whole fleet on the old version."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from lab.fleet import Lab
from lab.traffic import Traffic
from tests.support import PlaybookRun, fleet_state, run_playbook

QUICK_HEALTH = json.dumps({"deploy_health": {"deadline": 3}})


def deploy(lab: Lab, artifact: Path, *extra: str) -> PlaybookRun:
    return run_playbook(
        Path("fleet.rollout.deploy"),
        lab.inventory,
        "-f",
        "10",
        "-e",
        "deploy_version=v2",
        "-e",
        f"deploy_artifact={artifact}",
        "-e",
        "rollout_window=3",
        "-e",
        "rollout_canary=1",
        "-e",
        QUICK_HEALTH,
        *extra,
    )


@pytest.mark.lab(hosts=10)
def test_a_release_failing_on_the_fifth_host_is_reverted_everywhere(lab: Lab) -> None:
    artifact = lab.build("v2", fail_hosts=["app05"])
    traffic = Traffic(lab.frontend_url, rate=100, seconds=900).start()
    try:
        time.sleep(0.3)
        run = deploy(lab, artifact)
        time.sleep(0.3)
    finally:
        result = traffic.stop()
    assert run.rc != 0
    assert result.failed == 0, result.failures()[:5]
    assert fleet_state(lab) == {h.name: ("v1", "UP") for h in lab.hosts}, run.stdout[-3000:]
    report = run.stdout[run.stdout.index("PLAY [Report how the rollout ended]") :]
    assert '"app05": "Health-check the release"' in report
    assert '"result": "halted and reverted"' in report
    for name in ("app01", "app02", "app03", "app04"):
        assert f'"{name}"' in report  # listed as reverted
    moved = {r.host for r in result.records if r.version == "v2"}
    assert {"app01", "app02", "app03", "app04"} <= moved  # they really ran v2 before the revert
    assert "app05" not in moved  # users never reached the broken host
    for host in lab.hosts[:5]:
        mark = json.loads((host.root / "releases" / "v2.bad").read_text())  # beside the release
        assert "Health-check the release" in mark["reason"] or "rollback" in mark["reason"], host.name

    again = deploy(lab, artifact)
    assert again.rc != 0
    assert "release v2 was marked bad" in again.stdout
    # the hosts that marked it (the failed one, the reverted ones) refuse it while staging, before any host
    # leaves rotation
    refused = re.search(r"staging v2 failed on (\d+) of 10 targets, before any host left", again.stdout)
    assert refused and int(refused.group(1)) >= 5, again.evidence()
    assert "app05: Install the release beside the current one: release v2 was marked bad" in again.stdout
    assert fleet_state(lab) == {h.name: ("v1", "UP") for h in lab.hosts}

    forced = deploy(lab, artifact, "-e", "deploy_force=true")
    assert "was marked bad" not in forced.stdout
    assert "app05: deploying v2 failed at 'Health-check the release'" in forced.stdout
    assert fleet_state(lab) == {h.name: ("v1", "UP") for h in lab.hosts}


@pytest.mark.lab(hosts=4)
def test_auto_revert_can_be_turned_off(lab: Lab) -> None:
    artifact = lab.build("v2", fail_hosts=["app03"])
    run = deploy(lab, artifact, "-e", "rollout_auto_revert=false", "-e", "rollout_window=1")
    assert run.rc != 0
    assert fleet_state(lab) == {
        "app01": ("v2", "UP"),
        "app02": ("v2", "UP"),
        "app03": ("v1", "UP"),
        "app04": ("v1", "UP"),
    }


@pytest.mark.lab(hosts=3)
def test_rollback_playbook_goes_to_the_previous_release_or_the_one_asked(lab: Lab) -> None:
    good = deploy(lab, lab.build("v2"))
    assert good.rc == 0, good.stdout[-3000:]
    traffic = Traffic(lab.frontend_url, rate=100, seconds=900).start()
    try:
        back = run_playbook(Path("fleet.rollout.rollback"), lab.inventory, "-e", "rollout_window=2")
        again = run_playbook(Path("fleet.rollout.rollback"), lab.inventory, "-e", "rollout_window=2")
        forward = run_playbook(Path("fleet.rollout.rollback"), lab.inventory, "-e", "rollback_version=v2")
    finally:
        result = traffic.stop()
    assert back.rc == 0, back.evidence()
    assert again.rc == 0 and all(again.recap(h.name)["changed"] == 0 for h in lab.hosts), again.evidence()
    assert forward.rc == 0, forward.evidence()
    assert result.failed == 0, result.failures()[:5]
    assert {"v1", "v2"} <= set(result.versions())
    assert fleet_state(lab) == {h.name: ("v2", "UP") for h in lab.hosts}


@pytest.mark.lab(hosts=2)
def test_a_rollback_that_fails_names_the_host_the_release_and_the_step(lab: Lab) -> None:
    good = deploy(lab, lab.build("v2"))
    assert good.rc == 0, good.evidence()
    never_healthy = json.dumps({"deploy_health": {"deadline": 3, "body_regex": "never-in-the-body"}})

    back = run_playbook(
        Path("fleet.rollout.rollback"), lab.inventory, "-e", never_healthy, "--limit", "app02,localhost"
    )

    assert back.rc != 0
    assert "app02: rolling back to v1 failed at 'Health-check the release'" in back.stdout, back.evidence()
    assert "LEFT DRAINED" in back.stdout, back.evidence()


USERS_ROLLBACK_PLAY = """
- name: A user's own play, through the deploy role's rollback entry point
  hosts: app01
  gather_facts: false
  tasks:
    - name: Take app01 back to the previous release
      ansible.builtin.include_role:
        name: fleet.rollout.deploy
        tasks_from: rollback

- name: A user's own play, through the rollback role (deprecated) and its own option
  hosts: app02
  gather_facts: false
  roles:
    - role: fleet.rollout.rollback
      rollback_version: v1
"""


@pytest.mark.lab(hosts=3)
def test_the_rollback_entry_point_and_the_rollback_role_work_in_a_users_play(
    lab: Lab, tmp_path: Path
) -> None:
    good = deploy(lab, lab.build("v2"))
    assert good.rc == 0, good.stdout[-3000:]
    playbook = tmp_path / "rollback.yml"
    playbook.write_text(USERS_ROLLBACK_PLAY)

    back = run_playbook(playbook, lab.inventory)
    again = run_playbook(playbook, lab.inventory, "--limit", "app02")  # app01's previous is v2 now

    assert back.rc == 0, back.stdout[-3000:]
    assert fleet_state(lab) == {"app01": ("v1", "UP"), "app02": ("v1", "UP"), "app03": ("v2", "UP")}
    assert again.rc == 0 and again.recap("app02")["changed"] == 0, again.stdout[-3000:]
