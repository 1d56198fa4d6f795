"""How a rollout ends, and what it leaves: the lock given back in every ending (linear batches, Ctrl-C),
the failure budget, the report of failures outside the cycle, preflight on named backends, and deploy_keep."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from lab.fleet import Lab
from tests.integration.test_capacity_guard import UpSampler
from tests.integration.test_rollout_journal import only_journal, start_journaled_deploy, wait_for_journal
from tests.support import deploy_report, fleet_state, run_deploy

QUICK_HEALTH = ("-e", json.dumps({"deploy_health": {"deadline": 3}}))


def locks(lab: Lab) -> list[Path]:
    return sorted((lab.state_dir / "locks").glob("*.lock"))


def releases(lab: Lab, host: str) -> list[str]:
    return sorted(p.name for p in (lab.host(host).root / "releases").iterdir() if p.is_dir())


@pytest.mark.lab(hosts=4)
def test_linear_batches_with_a_bad_release_give_the_lock_back_and_revert(lab: Lab) -> None:
    bad = lab.build("v2", fail_hosts=["app02"])
    linear = ("-e", "rollout_strategy=linear", "-e", "rollout_window=1")
    halted = run_deploy(lab.inventory, "v2", bad, *linear, *QUICK_HEALTH)
    assert halted.rc != 0
    assert locks(lab) == [], halted.stdout[-3000:]
    report = deploy_report(halted)
    assert report["failed"] == {"app02": "Health-check the release"}
    assert report["result"] == "halted and reverted"
    assert report["reverted"] == ["app01"]
    assert report["untouched"] == ["app03", "app04"]
    assert fleet_state(lab) == {h.name: ("v1", "UP") for h in lab.hosts}

    # at once, and not refused by the lock: the good release goes through in the same linear batches
    good = run_deploy(lab.inventory, "v3", lab.build("v3"), *linear)
    assert good.rc == 0, good.stdout[-3000:]
    assert fleet_state(lab) == {h.name: ("v3", "UP") for h in lab.hosts}


@pytest.mark.lab(hosts=3)
def test_ctrl_c_gives_the_lock_back_and_the_journal_says_interrupted(lab: Lab, tmp_path: Path) -> None:
    journal_dir = tmp_path / "journal"
    artifact = lab.build("v2", warmup=8.0)  # the first host stays in its verify step for a while
    playbook = start_journaled_deploy(lab, journal_dir, artifact, output=subprocess.PIPE)
    try:
        wait_for_journal(
            playbook,
            journal_dir,
            _in_verify,
            ended="the rollout ended before the interrupt",
            never="no host reached its verify step",
        )
        assert locks(lab), "the rollout holds its lock while it runs"
        os.kill(playbook.pid, signal.SIGINT)  # what Ctrl-C in a terminal sends
        output, _ = playbook.communicate(timeout=60)
    finally:
        if playbook.poll() is None:
            playbook.kill()
            playbook.wait()
    assert playbook.returncode == 99, output[-3000:]  # ansible-playbook's "User interrupted execution"
    assert locks(lab) == [], output[-3000:]
    assert "gave rollout lock 'app' of run" in output
    assert only_journal(journal_dir)["result"] == "interrupted"
    again = run_deploy(lab.inventory, "v2", artifact)  # the lock is free, and a re-run converges
    assert again.rc == 0, again.stdout[-3000:]
    assert fleet_state(lab) == {h.name: ("v2", "UP") for h in lab.hosts}


def _in_verify(journal_dir: Path) -> bool:
    for path in sorted(journal_dir.glob("*.json")) if journal_dir.exists() else []:
        hosts = json.loads(path.read_text())["hosts"]
        if any(host.get("running", {}).get("phase") == "verify" for host in hosts.values()):
            return True
    return False


@pytest.mark.lab(hosts=5)
def test_failures_within_the_budget_finish_the_roll_without_a_revert(lab: Lab) -> None:
    artifact = lab.build("v2", fail_hosts=["app03"])
    run = run_deploy(
        lab.inventory, "v2", artifact, "-e", "rollout_max_failures=2", "-e", "rollout_window=2", *QUICK_HEALTH
    )
    assert run.rc != 0  # a host failed
    state = fleet_state(lab)
    assert state.pop("app03") == ("v1", "UP")  # on its previous release, back in rotation
    assert state == {h: ("v2", "UP") for h in ("app01", "app02", "app04", "app05")}
    report = deploy_report(run)
    assert report["failed"] == {"app03": "Health-check the release"}
    assert report["result"] == "complete with failed hosts within rollout_max_failures"
    assert (report["reverted"], report["untouched"]) == ([], [])
    assert report["fleet_version"] == "v2 except on app03 (on the release they had)"

    # beyond it: halt and revert
    worse = lab.build("v3", fail_hosts=["app02", "app03"])
    halted = run_deploy(
        lab.inventory,
        "v3",
        worse,
        "-e",
        "rollout_max_failures=1",
        "-e",
        "rollout_canary=0",
        "-e",
        "rollout_window=1",
        *QUICK_HEALTH,
    )
    assert halted.rc != 0
    assert deploy_report(halted)["result"] == "halted and reverted"
    assert {release for release, _status in fleet_state(lab).values()} <= {"v1", "v2"}
    assert all(status == "UP" for _release, status in fleet_state(lab).values())


@pytest.mark.lab(hosts=10)
def test_a_bad_artifact_on_one_host_fails_the_run_before_any_host_leaves_rotation(
    lab: Lab, tmp_path: Path
) -> None:
    """Every target stages the release before the first drain: one that cannot (here a checksum that does
    not match, as a corrupt download would be) fails the run while all still serve, naming it."""
    artifact = lab.build("v2")
    host_vars = tmp_path / "host_vars"
    host_vars.mkdir()
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(lab.inventory.read_text())
    (host_vars / "app07.yml").write_text("deploy_artifact_checksum: sha256:" + "0" * 64 + "\n")
    with UpSampler(lab, interval=0.05) as sampler:
        run = run_deploy(inventory, "v2", artifact, "-e", "rollout_max_failures=3", "-e", "rollout_window=3")
    assert run.rc != 0
    assert "staging v2 failed on 1 of 10 targets, before any host left rotation" in run.stdout, run.evidence()
    assert "app07: Install the release beside the current one: " in run.stdout, run.evidence()
    assert "checksum" in run.stdout
    assert len(sampler.samples) > 10 and min(sampler.samples) == 10, sampler.samples  # all UP, none drained
    assert fleet_state(lab) == {h.name: ("v1", "UP") for h in lab.hosts}
    assert all((h.root / "releases" / "v2").is_dir() for h in lab.hosts if h.name != "app07")  # staged only
    assert not (lab.state_dir / "locks" / "app.lock").exists()  # the lab inventory's deploy_lock_dir


@pytest.mark.lab(hosts=2)
def test_preflight_checks_the_backends_a_balancer_names(lab: Lab, tmp_path: Path) -> None:
    balancers = [{"socket": str(b.socket), "backends": ["nope"]} for b in lab.balancers]
    run = run_deploy(lab.inventory, "v2", lab.build("v2"), "-e", json.dumps({"deploy_balancers": balancers}))
    assert run.rc != 0
    assert f"app01 is not a server of {lab.balancers[0].socket} backend nope" in run.stdout
    assert "PLAY [Roll the release" not in run.stdout
    assert [releases(lab, h.name) for h in lab.hosts] == [["v1"], ["v1"]]  # nothing staged anywhere
    assert locks(lab) == []


@pytest.mark.lab(hosts=1)
def test_deploy_keep_above_five_keeps_that_many(lab: Lab) -> None:
    old = lab.host("app01").root / "releases"
    for number in range(6):  # six older releases, installed one after the other long ago
        (old / f"r{number}").mkdir()
        os.utime(old / f"r{number}", (1_000_000 + number, 1_000_000 + number))
    run = run_deploy(lab.inventory, "v2", lab.build("v2"), "-e", "deploy_keep=8")
    assert run.rc == 0, run.stdout[-3000:]
    assert releases(lab, "app01") == ["r0", "r1", "r2", "r3", "r4", "r5", "v1", "v2"]
    trimmed = run_deploy(lab.inventory, "v3", lab.build("v3"), "-e", "deploy_keep=6")
    assert trimmed.rc == 0, trimmed.stdout[-3000:]
    assert releases(lab, "app01") == ["r3", "r4", "r5", "v1", "v2", "v3"]


@pytest.mark.lab(hosts=3)
def test_a_failing_hook_halts_reverts_and_gives_the_lock_back(lab: Lab, tmp_path: Path) -> None:
    hook = tmp_path / "after_switch.yml"
    hook.write_text(
        "- name: Smoke test of the user's own\n"
        "  ansible.builtin.fail:\n"
        "    msg: smoke test failed\n"
        "  when: inventory_hostname == 'app02'\n"
    )
    hooks = json.dumps({"deploy_hooks": {"after_switch": str(hook)}})
    run = run_deploy(lab.inventory, "v2", lab.build("v2"), "-e", hooks, "-e", "rollout_window=2")
    assert run.rc != 0
    assert locks(lab) == []
    report = deploy_report(run)
    assert report["failed"] == {"app02": "Smoke test of the user's own"}
    assert report["result"] == "halted and reverted"
    assert fleet_state(lab) == {h.name: ("v1", "UP") for h in lab.hosts}
