"""``make demo``: a 10-host lab, live traffic, a rolling deploy to a new version, and the figures."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from lab.fleet import Lab, format_status
from lab.traffic import Traffic, format_summary

DEMO_HOSTS = 10
DEMO_RATE = 100.0
MAX_SECONDS = 900.0
REPO = Path(__file__).resolve().parent.parent


def demo(lab: Lab) -> int:
    print(f"demo: bringing up a {DEMO_HOSTS}-host lab (real HAProxy, real app processes on 127.0.1.x)")
    started = time.monotonic()
    lab.up(hosts=DEMO_HOSTS)
    try:
        print(f"demo: lab up in {time.monotonic() - started:.1f}s; inventory {lab.inventory}")
        artifact = lab.build("v2")
        traffic = Traffic(lab.frontend_url, rate=DEMO_RATE, seconds=MAX_SECONDS).start()
        print(f"demo: {DEMO_RATE:.0f} req/s through HAProxy; rolling v1 -> v2 with fleet.rollout.deploy")
        rollout_started = time.monotonic()
        rollout = run_deploy(lab, "v2", artifact)
        rollout_seconds = time.monotonic() - rollout_started
        result = traffic.stop()
        print()
        print(f"rollout: exit {rollout.returncode} in {rollout_seconds:.1f}s wall time")
        print(*[line for line in rollout.stdout.splitlines() if line.startswith("ROLLOUT")], sep="\n")
        print(format_summary(result))
        print(format_status(lab.status()))
        if rollout.returncode != 0:
            print(rollout.stdout[-3000:], rollout.stderr[-2000:], sep="\n")
        return 0 if rollout.returncode == 0 and result.failed == 0 else 1
    finally:
        stopped = lab.down()
        print(f"demo: lab down, stopped {len(stopped)} processes")


def run_deploy(lab: Lab, version: str, artifact: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ}
    env.setdefault("ANSIBLE_COLLECTIONS_PATH", str(REPO / ".tmp" / "collections"))
    env.setdefault("ANSIBLE_CALLBACKS_ENABLED", "fleet.rollout.rollout_journal")
    env.setdefault("FLEET_ROLLOUT_JOURNAL_DIR", str(REPO / ".tmp" / "journal"))
    playbook = Path(sys.executable).parent / "ansible-playbook"
    command = [str(playbook), "fleet.rollout.deploy", "-i", str(lab.inventory)]
    command += ["-e", f"deploy_version={version}", "-e", f"deploy_artifact={artifact}"]
    return subprocess.run(command, capture_output=True, text=True, env=env, check=False)
