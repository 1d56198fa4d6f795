"""Helpers for tests that run real ansible-playbook commands against the lab or localhost."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"


@dataclass
class PlaybookRun:
    rc: int
    stdout: str
    stderr: str

    def recap(self, host: str) -> dict[str, int]:
        """The PLAY RECAP counters of one host (ok, changed, failed, ...)."""
        for line in self.stdout.splitlines():
            name, _, counters = line.partition(" : ")
            if name.strip() == host and counters:
                pairs = (item.split("=") for item in counters.split())
                return {key: int(value) for key, value in pairs}
        raise AssertionError(f"no recap for {host} in:\n{self.stdout[-3000:]}")


def ansible_env(**extra: str) -> dict[str, str]:
    """Environment for ansible-* commands: this checkout as fleet.rollout, quiet and colourless."""
    env = {**os.environ}
    env.update(
        ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".tmp" / "collections"),
        ANSIBLE_HOST_KEY_CHECKING="False",
        ANSIBLE_RETRY_FILES_ENABLED="False",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        ANSIBLE_LOCALHOST_WARNING="False",
        ANSIBLE_INVENTORY_UNPARSED_WARNING="False",
        PATH=f"{VENV_BIN}:{env.get('PATH', '')}",
    )
    env.update(extra)
    return env


def run_playbook(
    playbook: Path, inventory: Path | str, *args: str, timeout: float = 600, **env: str
) -> PlaybookRun:
    """Run a real ansible-playbook; tests assert on rc, the recap and the output."""
    done = subprocess.run(
        [str(VENV_BIN / "ansible-playbook"), "-i", str(inventory), str(playbook), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=ansible_env(**env),
        check=False,
    )
    return PlaybookRun(done.returncode, done.stdout, done.stderr)
