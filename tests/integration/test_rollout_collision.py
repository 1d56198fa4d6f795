"""Two rollouts of the same target at once: exactly one runs, the other stops at once naming the holder."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import pytest

from lab.fleet import Lab
from tests.support import VENV_BIN, ansible_env


@pytest.mark.lab(hosts=3)
def test_two_rollouts_at_once_cannot_both_run(lab: Lab) -> None:
    artifact = lab.build("v2")
    command = [str(VENV_BIN / "ansible-playbook"), "fleet.rollout.deploy", "-i", str(lab.inventory)]
    command += ["-e", "deploy_version=v2", "-e", f"deploy_artifact={artifact}"]
    started = time.monotonic()
    env = ansible_env()
    runs = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        for _ in range(2)
    ]
    finished: list[tuple[int, str, float]] = []

    def wait_for(run: subprocess.Popen[str]) -> None:
        output, _ = run.communicate(timeout=600)
        finished.append((run.returncode, output, time.monotonic() - started))  # each its own end time

    waiters = [threading.Thread(target=wait_for, args=(run,)) for run in runs]
    for waiter in waiters:
        waiter.start()
    for waiter in waiters:
        waiter.join()
    winners = [f for f in finished if f[0] == 0]
    losers = [f for f in finished if f[0] != 0]
    assert len(winners) == 1 and len(losers) == 1, [f[1][-2000:] for f in finished]
    _rc, lost, lost_after = losers[0]
    assert "held by" in lost or "holds" in lost or "since" in lost, lost[-2000:]
    assert "Roll the release across the targets" not in lost  # it stopped before touching a host
    assert lost_after < winners[0][2]  # it failed at once, not after the other finished
    assert {h.current_release() for h in lab.hosts} == {"v2"}
    locks = Path(lab.state()["hosts"][0]["root"]).parent.parent / "locks"
    assert not list(locks.glob("*.lock")), "the lock outlived the rollout"
