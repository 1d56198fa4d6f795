"""Bench 4: what release analysis costs a good rollout, and what it saves users of a flaky release.

What: a 10-host lab under 150 requests/s; `ansible-playbook fleet.rollout.deploy` with its defaults
(window 1, canary 1; analysis on, rollout_canary_bake 60 s) and with the analysis off
(deploy_analysis.enabled=false, no bake), side by side:
- a good release: wall time of the whole playbook, and failed requests (should be 0 either way);
- a release answering 8% of requests with 500 while its /health passes: failed requests users saw, the
  hosts that ended on it, and the time to the verdict; once more with a 10% canary weight.
Each scenario runs --repeat times on a fresh lab; figures are medians (min-max).

The harm of a flaky canary is bounded by the evidence the test needs, not by a time: it fails once its
failed responses are significant against threshold p0 = max(baseline x 2, baseline + 1 point), about 5
failed requests at 8% (tests/unit/test_analysis.py), whatever the canary's share of traffic; a smaller
share (rollout_canary_weight) takes longer to gather them, not more of them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repo root: `lab` and `bench.benchkit`

from bench.benchkit import TMP, load, spread
from lab.fleet import Lab
from lab.traffic import Traffic

HOSTS, RATE = 10, 150.0
WORK = TMP / "bench-work" / "analysis_cost"
ANALYSIS_OFF = ("-e", json.dumps({"deploy_analysis": {"enabled": False}}), "-e", "rollout_canary_bake=0")
ANALYSIS_ON = ("-e", "rollout_canary_bake=60")  # the role's default (the lab's inventory turns it off)
SCENARIOS: dict[str, tuple[dict[str, object], tuple[str, ...]]] = {
    "good release, analysis off": ({}, ANALYSIS_OFF),
    "good release, analysis on": ({}, ANALYSIS_ON),
    "8% failing release, analysis off": ({"error_rate": 0.08}, ANALYSIS_OFF),
    "8% failing release, analysis on": ({"error_rate": 0.08}, ANALYSIS_ON),
    "8% failing, analysis on, canary weight 10%": (
        {"error_rate": 0.08},
        (*ANALYSIS_ON, "-e", "rollout_canary_weight=10"),
    ),
}


@dataclass(frozen=True)
class Outcome:
    seconds: float
    rc: int
    failed_requests: int
    on_new_release: int


def one_run(name: str, behaviour: dict[str, object], extra: tuple[str, ...], index: int) -> Outcome:
    lab = Lab(WORK / f"lab-{index}")
    lab.up(hosts=HOSTS)
    try:
        artifact = lab.build("v2", **behaviour)
        env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(TMP / "collections"), "ANSIBLE_NOCOLOR": "1"}
        command = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(lab.inventory)]
        command += [
            "fleet.rollout.deploy",
            "-e",
            "deploy_version=v2",
            "-e",
            f"deploy_artifact={artifact}",
            *extra,
        ]
        traffic = Traffic(lab.frontend_url, rate=RATE, seconds=900).start()
        time.sleep(1.0)
        started = time.monotonic()
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        seconds = time.monotonic() - started
        time.sleep(2.0)  # what users see just after the run counts too
        result = traffic.stop()
        (WORK / f"{name.replace(' ', '_').replace('%', 'pct').replace(',', '')}-{index}.log").write_text(
            done.stdout
        )
        on_new = sum(host.current_release() == "v2" for host in lab.hosts)
        return Outcome(seconds, done.returncode, result.failed, on_new)
    finally:
        lab.down()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    print(f"load before: {load()}", flush=True)
    rows = []
    for name, (behaviour, extra) in SCENARIOS.items():
        outcomes = [one_run(name, behaviour, extra, i) for i in range(args.repeat)]
        rows.append((name, outcomes))
        print(f"done: {name}", flush=True)
    print(f"load after: {load()}")
    print(
        f"\n| scenario ({HOSTS} hosts, {RATE:g} req/s) | playbook (s) | exit | failed requests"
        " | hosts on v2 |"
    )
    print("|---|---|---|---|---|")
    for name, outcomes in rows:
        seconds = spread([o.seconds for o in outcomes])
        failed = spread([float(o.failed_requests) for o in outcomes])
        rcs = ",".join(sorted({str(o.rc) for o in outcomes}))
        hosts = statistics.median(o.on_new_release for o in outcomes)
        print(f"| {name} | {seconds} | {rcs} | {failed} | {hosts:g} |")
    good_off, good_on = (statistics.median(o.seconds for o in rows[i][1]) for i in (0, 1))
    print(f"\nanalysis adds {good_on - good_off:.1f} s to a good {HOSTS}-host rollout at {RATE:g} req/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
