"""Bench: the rolling window against `serial` batches + linear, on uneven per-host deploy times.

What: one lab of --hosts hosts behind a real HAProxy, light traffic through it. Each host gets its own
seconds of deploy work from a seeded map (most 1-3 s, a few 10 s stragglers), done by a deploy hook
(deploy_hooks.after_switch = bench/window_vs_serial/work.yml: `command: sleep N` on the host). The real
playbook `fleet.rollout.deploy` then rolls the lab twice, one run after the other, both with -f --forks
and the same work map: with the rolling strategy (rollout_window=--window, rollout_canary=0 so both runs do
the same hosts the same way) and with `-e rollout_strategy=linear` (serial batches of --window).

Measured, not assumed: a callback (bench/window_vs_serial/window_busy.py) logs every host's task starts and
results on the controller's monotonic clock. Busy time of a host = from the start of its first task in the
roll play to the result of its last one. Lower bound = max(sum(busy) / window, max(busy)), from the rolling
run's busy times. Wall = the whole `ansible-playbook` (start-up and the other plays included); play = the
roll play alone (first task started to last result). Targets: rolling wall <= 0.6x linear wall and
<= 1.4x the lower bound.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repo root: `lab` and `bench.benchkit`

from bench.benchkit import Span
from bench.benchkit.runs import (
    LoadSampler,
    TimedRun,
    batches,
    in_order,
    lower_bound,
    run_problems,
    serial_batches,
    timed_run,
)
from lab.fleet import Lab

ROOT = Path(__file__).resolve().parent.parent
HERE = ROOT / "bench" / "window_vs_serial"
HOOK = HERE / "work.yml"
STATE = ROOT / ".tmp" / "bench-window"
LOGS = ROOT / ".tmp" / "bench-window-logs"
ROLL_PLAY = "Roll the release across the targets"  # the names of playbooks/deploy.yml's plays
TARGET_VS_SERIAL, TARGET_VS_BOUND = 0.6, 1.4
STRAGGLER_SECONDS = 10.0


def work_map(hosts: list[str], seed: int, stragglers: int, scale: float = 1.0) -> dict[str, float]:
    """Seconds of work per host: `stragglers` hosts of 10 s, the others 1-3 s (0.1 s steps); times scale."""
    rng = random.Random(seed)
    slow = set(rng.sample(hosts, stragglers))
    work = {h: STRAGGLER_SECONDS if h in slow else round(rng.uniform(1.0, 3.0), 1) for h in hosts}
    return {h: round(seconds * scale, 2) for h, seconds in work.items()}


def deploy(lab: Lab, args: argparse.Namespace, label: str, version: str, work: dict[str, float]) -> TimedRun:
    artifact = lab.build(version)
    command = [str(Path(sys.executable).parent / "ansible-playbook"), "fleet.rollout.deploy"]
    command += ["-i", str(lab.inventory), "-f", str(args.forks)]
    command += ["-e", f"deploy_version={version}", "-e", f"deploy_artifact={artifact.resolve()}"]
    command += ["-e", f"rollout_window={args.window}", "-e", "rollout_canary=0"]
    command += ["-e", json.dumps({"deploy_hooks": {"after_switch": str(HOOK)}, "bench_work": work})]
    if label == "linear":
        command += ["-e", "rollout_strategy=linear"]
    env = {**os.environ}
    env.setdefault("ANSIBLE_COLLECTIONS_PATH", str(ROOT / ".tmp" / "collections"))
    log = LOGS / f"{label}-{version}.jsonl"
    return timed_run(
        command,
        env,
        label=label,
        version=version,
        log=log,
        play=ROLL_PLAY,
        traffic=(lab.frontend_url, args.rate),
    )


def work_limit(work: dict[str, float], window: int) -> float:
    """What the work map alone allows, with no per-host overhead at all: a perfect in-order window
    over perfect serial batches of the same hosts."""
    seconds = [work[host] for host in sorted(work)]
    return in_order(seconds, window) / serial_batches(seconds, window)


def idle_slots(run: TimedRun, window: int) -> tuple[float, float]:
    """Slot-seconds left idle in the roll play: before the last host started (admission) and after (tail)."""
    play = run.play
    last_start = max(s.start for s in run.busy.values())

    def used(a: float, b: float) -> float:
        return sum(max(0.0, min(b, s.end) - max(a, s.start)) for s in run.busy.values())

    before = window * (last_start - play.start) - used(play.start, last_start)
    after = window * (play.end - last_start) - used(last_start, play.end)
    return before, after


def report_repeat(
    rolling: TimedRun, linear: TimedRun, work: dict[str, float], window: int
) -> dict[str, float]:
    bound = lower_bound([s.seconds for s in rolling.busy.values()], window)
    print()
    print(f"{'host':<6} {'work':>5} {'busy rolling':>13} {'busy linear':>12}")
    for host in sorted(work):
        busy = rolling.busy[host].seconds, linear.busy[host].seconds
        print(f"{host:<6} {work[host]:>5.1f} {busy[0]:>13.2f} {busy[1]:>12.2f}")
    for run in (rolling, linear):
        seconds = [s.seconds for s in run.busy.values()]
        overhead = [run.busy[h].seconds - work[h] for h in work]
        print(
            f"{run.label}: busy sum {sum(seconds):.1f} s, max {max(seconds):.2f} s; per-host overhead "
            f"(busy - work) median {statistics.median(overhead):.2f} s "
            f"({min(overhead):.2f}-{max(overhead):.2f})"
        )
    print(
        f"lower bound = max({sum(s.seconds for s in rolling.busy.values()):.1f} / {window}, "
        f"{max(s.seconds for s in rolling.busy.values()):.2f}) = {bound:.2f} s (rolling run's busy times)"
    )
    rolling_busy = [rolling.busy[h].seconds for h in sorted(work)]  # in play (inventory) order
    ordered = in_order(rolling_busy, window)
    print(
        f"in-order optimum = {ordered:.2f} s (hosts started in play order, each the instant a slot frees, "
        f"with the rolling run's busy times); the roll play took {rolling.play.seconds / ordered:.2f}x that"
    )
    print()
    print(f"{'run':<8} {'wall (s)':>9} {'play (s)':>9} {'ratio to serial':>16} {'ratio to lower bound':>21}")
    for run in (rolling, linear):
        wall_ratios = f"{run.wall / linear.wall:.2f} ({run.play.seconds / linear.play.seconds:.2f})"
        bound_ratios = f"{run.wall / bound:.2f} ({run.play.seconds / bound:.2f})"
        print(
            f"{run.label:<8} {run.wall:>9.1f} {run.play.seconds:>9.1f} {wall_ratios:>16} {bound_ratios:>21}"
        )
    print("  (ratios of wall time; of the roll play alone in parentheses)")
    vs_serial, vs_bound = rolling.wall / linear.wall, rolling.wall / bound
    verdicts = (
        f"rolling wall <= {TARGET_VS_SERIAL}x serial + linear: {vs_serial:.2f} "
        + ("PASS" if vs_serial <= TARGET_VS_SERIAL else "MISS"),
        f"rolling wall <= {TARGET_VS_BOUND}x lower bound: {vs_bound:.2f} "
        + ("PASS" if vs_bound <= TARGET_VS_BOUND else "MISS"),
    )
    print("targets: " + "; ".join(verdicts))
    print()
    print(f"{'task (roll play)':<58} {'median s rolling':>16} {'median s linear':>15}")
    for name, seconds in rolling.tasks.items():
        other = linear.tasks.get(name, [])
        linear_median = f"{statistics.median(other):.2f}" if other else "-"
        print(f"{name[:58]:<58} {statistics.median(seconds):>16.2f} {linear_median:>15}")
    print()
    print("where the time goes:")
    for run in (rolling, linear):
        plays = " + ".join(
            f"{span.seconds:.1f} s {name.split(' ', 1)[0].lower()}" for name, span in run.plays.items()
        )
        rest = run.wall - sum(span.seconds for span in run.plays.values())
        print(
            f"  {run.label}: wall {run.wall:.1f} s = plays {plays} + start-up and between plays {rest:.1f} s"
        )
        print(
            f"  {run.label}: ansible-playbook CPU {run.cpu:.1f} s (its main process {run.main_cpu:.1f} s, "
            f"workers and modules the rest); all cores {run.machine_busy:.0%} busy; "
            f"load {run.load[0]:.2f} -> {run.load[1]:.2f}"
        )
        if run.traffic:
            print(f"  {run.label}: traffic sent {run.traffic.sent}, failed {run.traffic.failed}")
    admission, tail = idle_slots(rolling, window)
    in_flight = sum(s.seconds for s in rolling.busy.values()) / rolling.play.seconds
    print(
        f"  rolling: {in_flight:.2f} hosts in flight on average (window {window}); idle slot-seconds "
        f"{admission:.1f} before the last host started, {tail:.1f} after"
    )
    serial_bound = serial_batches(rolling_busy, window)
    for number, batch in enumerate(batches(sorted(work), window), 1):
        span = Span(min(linear.busy[h].start for h in batch), max(linear.busy[h].end for h in batch))
        slowest = max(linear.busy[h].seconds for h in batch)
        names = ", ".join(f"{h}({work[h]:g})" for h in batch)
        print(
            f"  linear batch {number}: {names}: {span.seconds:.1f} s, its slowest host busy {slowest:.1f} s"
        )
    print(
        f"  serial batches of the rolling run's busy times: {serial_bound:.1f} s (each batch's slowest, "
        f"summed); lower bound / that = {bound / serial_bound:.2f}, in-order optimum / that = "
        f"{ordered / serial_bound:.2f}"
    )
    cores = os.cpu_count() or 1
    per_host = rolling.cpu / len(work), linear.cpu / len(work)
    print(
        f"  controller CPU per host: rolling {per_host[0]:.2f} s, linear {per_host[1]:.2f} s; "
        f"rolling's CPU alone fills all {cores} cores for {rolling.cpu / cores:.1f} s"
    )
    return {
        "rolling_wall": rolling.wall,
        "linear_wall": linear.wall,
        "rolling_play": rolling.play.seconds,
        "linear_play": linear.play.seconds,
        "bound": bound,
    }


def print_seed_table(seeds: int, hosts: int, window: int, stragglers: int) -> None:
    names = [f"app{number:02d}" for number in range(1, hosts + 1)]  # the lab's host names
    print(f"{hosts} hosts, window {window}, {stragglers} stragglers; no per-host overhead:")
    print("seed | stragglers at | perfect in-order window / perfect serial batches")
    limits = []
    for seed in range(1, seeds + 1):
        work = work_map(names, seed, stragglers)
        slow = [str(names.index(h) + 1) for h in names if work[h] == STRAGGLER_SECONDS]
        limits.append(work_limit(work, window))
        print(f"{seed:>4} | {', '.join(slow):<13} | {limits[-1]:.2f}")
    print(f"median {statistics.median(limits):.2f}, range {min(limits):.2f}-{max(limits):.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--hosts", type=int, default=20)
    parser.add_argument("--window", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--stragglers", type=int, default=None, help="10 s hosts (default 15%% of the hosts)")
    parser.add_argument("--forks", type=int, default=10, help="ansible-playbook -f (at least the window)")
    parser.add_argument("--rate", type=float, default=20.0, help="requests/s through HAProxy (0: none)")
    parser.add_argument("--repeats", type=int, default=1, help="rolling + linear pairs on the same lab")
    parser.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="multiply every host's work (to see the per-host overhead's share)",
    )
    parser.add_argument(
        "--seed-table",
        type=int,
        default=0,
        metavar="N",
        help="print what the work maps of seeds 1..N allow (no overhead, no lab) and exit",
    )
    args = parser.parse_args()
    if args.forks < args.window:
        parser.error("--forks must be at least --window (a host in flight needs a worker)")
    stragglers = args.stragglers if args.stragglers is not None else max(1, round(args.hosts * 0.15))
    if args.seed_table:
        print_seed_table(args.seed_table, args.hosts, args.window, stragglers)
        return 0
    lab = Lab(STATE)
    print(f"bench: bringing up a {args.hosts}-host lab in {STATE.relative_to(ROOT)}", flush=True)
    lab.up(hosts=args.hosts)
    problems: list[str] = []
    figures: list[dict[str, float]] = []
    try:
        hosts = [h.name for h in lab.hosts]
        work = work_map(hosts, args.seed, stragglers, args.scale)
        print(
            f"work (seed {args.seed}, scale {args.scale:g}, {stragglers} stragglers, "
            f"{sum(work.values()):.1f} s in all): " + ", ".join(f"{h}={s:g}" for h, s in work.items())
        )
        print(
            f"the work map's own limit: with no per-host overhead at all, a perfect in-order window takes "
            f"{work_limit(work, args.window):.2f}x the wall of perfect serial batches "
            "(--seed-table N: other seeds)"
        )
        print(
            f"window {args.window}, forks {args.forks}, canary off, traffic {args.rate:g} req/s; "
            f"cores {os.cpu_count()}, load {' '.join(f'{x:.2f}' for x in os.getloadavg())}",
            flush=True,
        )
        with LoadSampler() as load:
            for repeat in range(args.repeats):
                runs = []
                for offset, label in enumerate(("rolling", "linear")):
                    version = f"v{2 + 2 * repeat + offset}"
                    print(f"repeat {repeat + 1}: {label} to {version} ...", flush=True)
                    run = deploy(lab, args, label, version, work)
                    problems += run_problems(lab, run)
                    runs.append(run)
                if problems:
                    break
                figures.append(report_repeat(runs[0], runs[1], work, args.window))
        if load.samples:
            print(
                f"\nload average (1 min) during the runs: {min(load.samples):.2f}-{max(load.samples):.2f}, "
                f"mean {statistics.mean(load.samples):.2f}, on {os.cpu_count()} cores"
            )
        if len(figures) > 1:
            print("\nrepeat | rolling wall | linear wall | bound | rolling/serial | rolling/bound")
            for n, f in enumerate(figures, 1):
                print(
                    f"{n:>6} | {f['rolling_wall']:>12.1f} | {f['linear_wall']:>11.1f} | {f['bound']:>5.1f} | "
                    f"{f['rolling_wall'] / f['linear_wall']:>14.2f} | {f['rolling_wall'] / f['bound']:>13.2f}"
                )
    finally:
        stopped = lab.down()
        print(f"bench: lab down, stopped {len(stopped)} processes")
    for problem in problems:
        print(f"ERROR {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
