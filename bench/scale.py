"""Bench: fleet.rollout.deploy against plain `serial` + community.general.haproxy, from 10 hosts to 200.

What: for each --hosts size, a lab of that many hosts behind a real HAProxy, --rate req/s of traffic
through it, and a release with a --warmup of its own. Each host's deploy work is a `command` (sleep) of a
seeded length: 1.1-2 s, and one 8 s straggler per 10 hosts. Both sides do it as a task of their own:
fleet.rollout as its after_switch hook (bench/window_vs_serial/work.yml), the plain playbook
(bench/plain_rollout.yml) after its restart. Both at the same concurrency: `rollout_window` = `serial` =
--window (a count, or a share of the hosts such as 10%), `-f` the same, no canary wave (the plain playbook
has none); `--canary` adds a fleet.rollout run with the default canary wave, printed beside.

Measured, not assumed: the callback bench/window_vs_serial/window_busy.py logs every host's task starts and
results. Busy time of a host = its first task start to its last result in the roll play. Lower bound =
max(busy sum / window, longest busy); in-order optimum = the wall of hosts started in play order, each the
instant a slot frees, with the run's own busy times. Controller CPU = ansible-playbook and everything it
started (workers, module runs, the work's sleeps); peak RSS of its main process; peak PSS of it and its
workers together. Targets (issue 15): at 10 hosts fleet.rollout <= 0.5x plain; at 50 <= 0.25x plain; at 200
wall <= 1.5x the in-order optimum, CPU <= 0.6 s per host, main RSS <= 1 GiB; 0 failed requests everywhere.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repo root: `lab` and `bench.benchkit`

from bench.benchkit import BENCH, TMP, community_general
from bench.benchkit.runs import LoadSampler, TimedRun, in_order, lower_bound, run_problems, timed_run
from lab.fleet import Lab

HOOK = BENCH / "window_vs_serial" / "work.yml"
PLAIN = BENCH / "plain_rollout.yml"
STATE = TMP / "bench-scale"
LOGS = TMP / "bench-scale-logs"
ROLL_PLAYS = {
    "fleet.rollout": "Roll the release across the targets",
    "plain": "Rolling deploy, one batch at a time",
}
STRAGGLER_SECONDS = 8.0
GIB = 1024**3


def work_map(hosts: list[str], seed: int) -> dict[str, float]:
    """1.1-2 s per host (0.1 s steps), and one 8 s straggler per 10 hosts."""
    rng = random.Random(seed)
    slow = set(rng.sample(hosts, max(1, len(hosts) // 10)))
    return {h: STRAGGLER_SECONDS if h in slow else round(rng.uniform(1.1, 2.0), 1) for h in hosts}


def window_of(spec: str, hosts: int) -> int:
    """A count, or a share of the hosts (rounded down, at least 1), as `serial` reads it."""
    if spec.endswith("%"):
        return max(1, hosts * int(spec[:-1]) // 100)
    return int(spec)


@dataclass
class Deploy:
    label: str
    canary: bool
    run: TimedRun
    window: int

    @property
    def busy(self) -> list[float]:
        return [self.run.busy[h].seconds for h in sorted(self.run.busy)]  # play (inventory) order

    @property
    def optimum(self) -> float:
        return in_order(self.busy, self.window)

    @property
    def bound(self) -> float:
        return lower_bound(self.busy, self.window)


def deploy(
    lab: Lab, label: str, version: str, *, window: int, work: dict[str, float], args: argparse.Namespace
) -> Deploy:
    artifact = lab.build(version, warmup=args.warmup).resolve()
    playbook = "fleet.rollout.deploy" if label != "plain" else str(PLAIN)
    command = [str(Path(sys.executable).parent / "ansible-playbook"), playbook, "-i", str(lab.inventory)]
    command += ["-f", str(max(window, 5))]
    canary = label == "fleet.rollout (canary)"
    if label == "plain":
        extra = {"bench_version": version, "bench_artifact": str(artifact), "bench_serial": window}
    else:
        extra = {"deploy_version": version, "deploy_artifact": str(artifact), "rollout_window": window}
        extra["deploy_hooks"] = {"after_switch": str(HOOK)}
        if not canary:
            extra["rollout_canary"] = 0
    command += ["-e", json.dumps({**extra, "bench_work": work})]
    paths = [TMP / "collections", community_general()]
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": ":".join(str(p) for p in paths)}
    log = LOGS / f"{len(work)}-{version}.jsonl"
    play = ROLL_PLAYS["plain" if label == "plain" else "fleet.rollout"]
    run = timed_run(
        command, env, label=label, version=version, log=log, play=play, traffic=(lab.frontend_url, args.rate)
    )
    return Deploy(label, canary, run, window)


def report(hosts: int, window: int, runs: list[Deploy]) -> None:
    plain = next((d for d in runs if d.label == "plain"), None)
    print(f"\n{hosts} hosts, window {window}:")
    header = (
        f"{'run':<24} {'wall s':>7} {'play s':>7} {'bound s':>8} {'optimum s':>10} {'wall/opt':>9} "
        f"{'play/opt':>9} {'vs plain':>9} {'CPU s/host':>11} {'main CPU':>9} {'main RSS':>9} {'tree PSS':>9} "
        f"{'failed':>10}"
    )
    print(header)
    for d in runs:
        run = d.run
        vs_plain = f"{run.wall / plain.run.wall:.2f}" if plain else "-"
        failed = f"{run.traffic.failed}/{run.traffic.sent}" if run.traffic else "-"
        print(
            f"{d.label:<24} {run.wall:>7.1f} {run.play.seconds:>7.1f} {d.bound:>8.1f} {d.optimum:>10.1f} "
            f"{run.wall / d.optimum:>9.2f} {run.play.seconds / d.optimum:>9.2f} {vs_plain:>9} "
            f"{run.cpu / hosts:>11.2f} {run.main_cpu / hosts:>9.2f} {run.main_rss / 2**20:>7.0f}MB "
            f"{run.tree_pss / 2**20:>7.0f}MB {failed:>10}"
        )
    for d in runs:
        overhead = statistics.median(d.busy)
        plays = " + ".join(f"{s.seconds:.1f} {n.split(' ', 1)[0].lower()}" for n, s in d.run.plays.items())
        print(f"  {d.label}: median busy per host {overhead:.2f} s; plays {plays}")
    verdicts(hosts, runs, plain)


def verdicts(hosts: int, runs: list[Deploy], plain: Deploy | None) -> None:
    fleet = next(d for d in runs if d.label == "fleet.rollout")
    checks = []
    if plain and hosts <= 10:
        checks.append(("wall <= 0.5x plain", fleet.run.wall / plain.run.wall, 0.5))
    if plain and hosts >= 50:
        checks.append(("wall <= 0.25x plain", fleet.run.wall / plain.run.wall, 0.25))
    if hosts >= 200:
        checks.append(("wall <= 1.5x in-order optimum", fleet.run.wall / fleet.optimum, 1.5))
        checks.append(("CPU <= 0.6 s per host", fleet.run.cpu / hosts, 0.6))
        checks.append(("main RSS <= 1 GiB", fleet.run.main_rss / GIB, 1.0))
    for name, value, target in checks:
        print(f"  target {name}: {value:.2f} {'PASS' if value <= target else 'MISS'}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--hosts", default="10", help="comma-separated lab sizes, e.g. 50,100,200")
    parser.add_argument("--window", default="20%", help="hosts at once: a count or a share such as 10%%")
    parser.add_argument(
        "--plain", default="all", help="sizes that also run plain serial: all, none or a list"
    )
    parser.add_argument(
        "--canary", action="store_true", help="also a fleet.rollout run with the default canary"
    )
    parser.add_argument("--rate", type=float, default=150.0, help="requests/s through HAProxy")
    parser.add_argument(
        "--warmup", type=float, default=1.0, help="seconds the release answers 503 after start"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--check-inter",
        type=int,
        default=1000,
        metavar="MS",
        help="HAProxy's check interval of a steady server (200 hosts checked every 200 ms keep a core busy)",
    )
    args = parser.parse_args()
    sizes = [int(x) for x in args.hosts.split(",")]
    plain_sizes = set(
        sizes if args.plain == "all" else [] if args.plain == "none" else map(int, args.plain.split(","))
    )
    problems: list[str] = []
    with LoadSampler() as load:
        for hosts in sizes:
            window = window_of(args.window, hosts)
            lab = Lab(STATE)
            print(
                f"bench: a {hosts}-host lab, checks every {args.check_inter} ms; window {window}; "
                f"{args.rate:g} req/s; load {os.getloadavg()[0]:.2f}",
                flush=True,
            )
            lab.up(hosts=hosts, check_inter_ms=args.check_inter)
            try:
                work = work_map([h.name for h in lab.hosts], args.seed)
                print(
                    f"  work {sum(work.values()):.1f} s in all, {max(1, hosts // 10)} stragglers", flush=True
                )
                labels = ["fleet.rollout"] + (["fleet.rollout (canary)"] if args.canary else [])
                labels += ["plain"] if hosts in plain_sizes else []
                runs = []
                for number, label in enumerate(labels, 2):
                    print(f"  {label} to v{number} ...", flush=True)
                    runs.append(deploy(lab, label, f"v{number}", window=window, work=work, args=args))
                    problems += run_problems(lab, runs[-1].run)
                if problems:
                    break
                report(hosts, window, runs)
            finally:
                lab.down()
    if load.samples:
        print(f"\nload average (1 min) during the runs: {min(load.samples):.2f}-{max(load.samples):.2f}")
    for problem in problems:
        print(f"ERROR {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
