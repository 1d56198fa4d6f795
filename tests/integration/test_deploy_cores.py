"""The deploy playbook on every ansible-core of the version matrix (2.17, 2.19, the newest): a good rollout
that a re-run leaves alone, then a bad release that halts and reverts. On 2.17 and the newest the modules
run as modules (their Python is not the one the lab's inventory names), so this is also the remote path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lab.fleet import Lab
from tests.support import Core, PlaybookRun, core_matrix, fleet_state, run_playbook


def deploy(core: Core, lab: Lab, version: str, artifact: Path, *extra: str) -> PlaybookRun:
    return run_playbook(
        Path("fleet.rollout.deploy"),
        lab.inventory,
        "-e",
        f"deploy_version={version}",
        "-e",
        f"deploy_artifact={artifact}",
        "-e",
        "rollout_window=2",
        *extra,
        ansible_playbook=core.ansible_playbook,
    )


def unexpected_warnings(run: PlaybookRun) -> list[str]:
    """Warnings a good run printed, but the one for every strategy plugin outside ansible.builtin (and the
    hint that comes with it on 2.19 and later; see the README)."""
    lines = (run.stdout + run.stderr).splitlines()
    expected = ("strategy plugins not included in ansible.builtin", "Deprecation warnings can be disabled")
    return [line for line in lines if "WARNING]" in line and not any(text in line for text in expected)]


@pytest.mark.lab(hosts=4)
@pytest.mark.parametrize("core", core_matrix())
def test_a_rollout_and_a_halted_one_on_each_ansible_core(lab: Lab, core: Core) -> None:
    good = deploy(core, lab, "v2", lab.build("v2"))
    assert good.rc == 0, good.stdout[-4000:]
    assert fleet_state(lab) == {h.name: ("v2", "UP") for h in lab.hosts}
    assert unexpected_warnings(good) == []
    again = deploy(core, lab, "v2", lab.build("v2"))
    assert again.rc == 0, again.stdout[-3000:]
    assert all(again.recap(h.name)["changed"] == 0 for h in lab.hosts), again.stdout[-3000:]

    bad = deploy(
        core,
        lab,
        "v3",
        lab.build("v3", fail_hosts=["app03"]),
        "-e",
        json.dumps({"deploy_health": {"deadline": 3}}),
    )
    assert bad.rc != 0
    assert '"result": "halted and reverted"' in bad.stdout, bad.stdout[-4000:]
    assert '"app03": "Health-check the release"' in bad.stdout
    assert fleet_state(lab) == {h.name: ("v2", "UP") for h in lab.hosts}, bad.stdout[-4000:]
    assert not list((lab.state_dir / "locks").glob("*.lock"))
