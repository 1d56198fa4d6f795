"""The molecule scenario of the role fleet.rollout.deploy (extensions/molecule/deploy), run as a user runs
it: `molecule test -s deploy` from the collection root. The scenario brings up its own lab, deploys v2 over v1
with the role, checks idempotence, verifies, and takes the lab down."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from lab.fleet import Lab, pids_naming, terminate
from tests.support import ROOT, VENV_BIN, ansible_env

SCENARIO = "deploy"
SEQUENCE = ["destroy", "syntax", "create", "prepare", "converge", "idempotence", "verify", "destroy"]


def molecule_env(ephemeral: Path) -> dict[str, str]:
    """The environment of a CI job, plus a private ephemeral directory so that parallel runs never meet."""
    env = {key: value for key, value in ansible_env().items() if not key.startswith("MOLECULE_")}
    env.update(MOLECULE_EPHEMERAL_DIRECTORY=str(ephemeral), NO_COLOR="1", PY_COLORS="0")
    return env


@pytest.mark.slow
def test_molecule_test_of_the_deploy_role_passes_and_leaves_no_process(tmp_path: Path) -> None:
    ephemeral = tmp_path / "molecule"
    lab_dir = ephemeral / "lab"  # where the scenario's create.yml puts its lab
    try:
        done = subprocess.run(
            [str(VENV_BIN / "molecule"), "test", "--scenario-name", SCENARIO],
            cwd=ROOT,
            env=molecule_env(ephemeral),
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    finally:
        # The scenario's destroy must have done this already; here it only saves CI from a stray lab
        # when molecule itself was killed or crashed.
        left_by_state = Lab(lab_dir).down()
        left_running = pids_naming([f"{lab_dir.resolve()}/"])
        for pid in left_running:
            terminate(pid, 5.0)
    output = done.stdout + done.stderr
    tail = output[-8000:]
    assert done.returncode == 0, tail

    # molecule's DETAILS: one line per step run, e.g. "deploy > idempotence: Executed: Successful"
    steps = re.findall(rf"^{SCENARIO} [>➜] (\w+): Executed: (\w+)\s*$", output, flags=re.MULTILINE)
    assert [step for step, _ in steps] == SEQUENCE, tail
    assert {result for _, result in steps} == {"Successful"}, tail

    # destroy ran `python -m lab down`: nothing of the lab is left running, and its directory is gone
    assert left_by_state == [], f"destroy left the lab up: {left_by_state}"
    assert left_running == [], f"destroy left processes running: {left_running}"
    assert not lab_dir.exists()
