"""Bench 2: how far a host's time out of rotation exceeds its own work, fleet.rollout.deploy vs plain Ansible.

What: on a 10-host lab, --rounds times in turn, `ansible-playbook fleet.rollout.deploy` (as documented, with
the lab inventory) and bench/plain_rollout.yml (serial 1, community.general.haproxy drain+disable and
enable with wait, copy/unarchive/symlink, restart, uri with until/retries) each deploy a new version.
For each host: out of rotation = from the first balancer sample whose status is not exactly `UP` to the
first one back at `UP` (a watcher samples `show stat` and `show servers state` every 10 ms). Own work =
the restart (a wrapper around `appctl restart`, passed as the restart command, logs its start and end)
+ warm-up (0: the releases have none) + HAProxy's own rise checks (from the sample where the server's
admin state is ready again to the sample showing UP). Overhead = out of rotation - own work. The target:
fleet.rollout's median overhead over the hosts at most 1.5 s.

Where the time goes: per-task timestamps (bench/callback/task_times.py) clipped to each host's window.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repo root: `lab` and `bench.benchkit`

from bench.benchkit import (
    BENCH,
    TMP,
    OutOfRotation,
    Run,
    Watcher,
    community_general,
    load,
    run_playbook,
    spread,
)
from lab.fleet import Lab

HOSTS, TARGET = 10, 1.5
WORK = TMP / "bench-work" / "rotation_overhead"
WRAPPER = """#!/bin/sh
# bench/rotation_overhead.py: run the restart command, log "host start end rc" (epoch seconds).
log=$1; host=$2; shift 2
start=$(date +%s.%N)
"$@"; rc=$?
echo "$host $start $(date +%s.%N) $rc" >> "$log"
exit $rc
"""


@dataclass
class HostCycle:
    host: str
    window: OutOfRotation
    restart: float
    rise: float
    tasks: dict[str, float]  # seconds of each task inside the window (own work taken out)

    @property
    def out(self) -> float:
        return self.window.seconds

    @property
    def overhead(self) -> float:
        return self.out - self.restart - self.rise


def deploy(lab: Lab, approach: str, version: str, log: Path) -> Run:
    artifact = lab.build(version)
    restart = f"{WORK / 'restart.sh'} {log} {{{{ inventory_hostname }}}} {{{{ app_service }}}} restart"
    if approach == "fleet.rollout":
        extra = {
            "deploy_version": version,
            "deploy_artifact": str(artifact),
            "deploy_restart_command": restart,
        }
        playbook = "fleet.rollout.deploy"
    else:
        extra = {"bench_version": version, "bench_artifact": str(artifact), "bench_restart_command": restart}
        playbook = str(BENCH / "plain_rollout.yml")
    return run_playbook(playbook, str(lab.inventory), "-e", json.dumps(extra), work=WORK)


def cycles(run: Run, watcher: Watcher, log: Path) -> list[HostCycle]:
    """Each host's window, own work, and the seconds each task spent inside the window."""
    found = []
    for line in sorted(log.read_text().splitlines()):
        host, start, end, _rc = line.split()
        r_start, r_end = float(start), float(end)
        spans = [s for s in watcher.out_of_rotation(host) if s.end and s.start <= r_start <= s.end]
        if not spans or spans[0].rise is None or spans[0].ready is None or spans[0].end is None:
            raise SystemExit(f"{host}: no complete out-of-rotation window around its restart: {spans}")
        window, ready, up = spans[0], spans[0].ready, spans[0].end
        restart, rise = r_end - r_start, up - ready
        inside: dict[str, float] = {}
        for task in (t for t in run.tasks if t.host == host and t.end > window.start and t.start < up):
            seconds = min(task.end, up) - max(task.start, window.start)
            seconds -= restart if task.start <= r_start and r_end <= task.end else 0.0
            seconds -= up - max(ready, task.start) if task.start <= ready <= task.end else 0.0
            name = task.task.split(" : ")[-1]
            inside[name] = inside.get(name, 0.0) + seconds
        inside["(between tasks)"] = window.seconds - restart - rise - sum(inside.values())
        found.append(HostCycle(host, window, restart, rise, inside))
    return found


def report(approach: str, rounds: list[tuple[Run, list[HostCycle]]]) -> dict[str, list[float]]:
    print(f"\n{approach}: per host, median over {len(rounds)} rounds (seconds)")
    print(f"{'host':6} | {'out of rotation':15} | {'restart':7} | {'rise':5} | overhead | statuses (round 1)")
    for i, first in enumerate(rounds[0][1]):
        per = [r[1][i] for r in rounds]
        med = {
            k: statistics.median(getattr(c, k) for c in per) for k in ("out", "restart", "rise", "overhead")
        }
        print(
            f"{first.host:6} | {med['out']:15.2f} | {med['restart']:7.2f} | {med['rise']:5.2f} | "
            f"{med['overhead']:8.2f} | {'>'.join(first.window.statuses)}"
        )
    per_round = {
        "overhead": [statistics.median(c.overhead for c in hosts) for _, hosts in rounds],
        "out": [statistics.median(c.out for c in hosts) for _, hosts in rounds],
        "wall": [run.wall for run, _ in rounds],
    }
    print("where the window goes, median over all hosts and rounds:")
    every = [c for _, hosts in rounds for c in hosts]
    names = list(dict.fromkeys(n for c in every for n in c.tasks))
    for name in names:
        print(f"  {statistics.median(c.tasks.get(name, 0.0) for c in every):5.2f}  {name}")
    print(f"  {statistics.median(c.restart for c in every):5.2f}  restart command itself (own work)")
    print(f"  {statistics.median(c.rise for c in every):5.2f}  HAProxy rise checks (own work)")
    return per_round


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    community_general()
    WORK.mkdir(parents=True, exist_ok=True)
    (WORK / "restart.sh").write_text(WRAPPER)
    (WORK / "restart.sh").chmod(0o755)
    lab = Lab(TMP / "bench-rotation-lab")
    lab.up(hosts=HOSTS)
    results: dict[str, list[tuple[Run, list[HostCycle]]]] = {"fleet.rollout": [], "plain Ansible": []}
    try:
        version = 1
        for i in range(args.rounds):
            for approach, done in results.items():
                version += 1
                log = WORK / f"restarts-v{version}.log"
                log.unlink(missing_ok=True)
                with Watcher(lab.balancers[0].socket) as watcher:
                    run = deploy(lab, approach, f"v{version}", log)
                    watcher.settle()
                if run.rc != 0:
                    raise SystemExit(f"{approach} v{version} failed:\n{run.output[-4000:]}")
                hosts = cycles(run, watcher, log)
                done.append((run, hosts))
                overhead = statistics.median(c.overhead for c in hosts)
                print(f"round {i + 1} {approach} -> v{version}: {run.wall:.1f}s, overhead {overhead:.2f}s")
                print(f"  {load()}")
    finally:
        lab.down()
    figures = {approach: report(approach, rounds) for approach, rounds in results.items()}
    print(f"\nmedian over hosts per round, then median (min-max) over {args.rounds} rounds, seconds")
    print(f"{'':14} | {'overhead':16} | {'out of rotation':16} | {'deploy wall time':16}")
    for name, row in figures.items():
        print(
            f"{name:14} | {spread(row['overhead']):16} | {spread(row['out']):16} | {spread(row['wall']):16}"
        )
    ours = statistics.median(figures["fleet.rollout"]["overhead"])
    verdict = "meets" if ours <= TARGET else "MISSES"
    print(f"fleet.rollout {verdict} the target: median overhead {ours:.2f}s (target <= {TARGET}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
