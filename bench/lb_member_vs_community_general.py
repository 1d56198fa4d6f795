"""Bench 1: how long community.general.haproxy and fleet.rollout.lb_member take a server out and back in.

What: on a 4-host lab (real HAProxy; checks every 200 ms, rise 2), app02 is taken out (drain, wait until
drained) and put back (enable, wait until UP) by each tool in turn, --repeat times, in two conditions:
idle, and with 1-second requests flowing through the balancer (4 a second, so about one in flight on each
server at any time). Tools: community.general.haproxy with its defaults (wait_interval 5 s), the same with
wait_interval 1 (it takes whole seconds only), and lb_member with its defaults.

How: each cycle is one ansible-playbook run of bench/lb_cycle.yml. The callback bench/callback/task_times.py
timestamps every task, so "take out" and "put back" are the two tasks' own durations, module start-up
included; a no-op ansible.builtin.ping in the same run gives that fixed cost. A watcher samples the
balancer every 10 ms and records what each tool had confirmed when it returned: sessions and queue left
after the drain, the statuses between the enable order and UP. Single runs then check community.general's
wait_retries, check mode and wait_interval.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repo root: `lab` and `bench.benchkit`

from bench.benchkit import BENCH, TMP, Run, Watcher, community_general, load, run_playbook, spread
from lab.fleet import Lab
from lab.haproxy import show_stat
from lab.traffic import Traffic

SERVER, BACKEND = "app02", "app"
CG = ["-e", "bench_tool=community_general"]
LB = ["-e", "bench_tool=lb_member"]
TOOLS = {
    "community.general.haproxy": CG,
    "community.general, wait_interval 1": [*CG, "-e", "bench_wait_interval=1"],
    "fleet.rollout.lb_member": LB,
}
WORK = TMP / "bench-work" / "lb_member_vs_community_general"


@dataclass
class Figures:
    out: list[float] = field(default_factory=list)
    back: list[float] = field(default_factory=list)
    noop: list[float] = field(default_factory=list)
    drained: list[bool] = field(default_factory=list)  # DRAIN/MAINT, scur = qcur = 0 when the drain returned
    checked: list[bool] = field(default_factory=list)  # UP only after HAProxy's check passed (went via DOWN)
    steps: list[str] = field(default_factory=list)  # statuses seen while putting back

    @property
    def total(self) -> list[float]:
        return [a + b for a, b in zip(self.out, self.back, strict=True)]


def cycle(lab: Lab, *args: str, restore: bool = True) -> Run:
    socket = lab.balancers[0].socket
    extra = ["-e", f"bench_socket={socket}", "-e", f"bench_backend={BACKEND}", "-e", f"bench_server={SERVER}"]
    run = run_playbook(str(BENCH / "lb_cycle.yml"), str(lab.inventory), *extra, *args, work=WORK)
    if restore:
        make_ready(lab)
    return run


def make_ready(lab: Lab) -> None:
    """Whatever a run left (a failed tool, check mode), app02 is ready and UP before the next one."""
    lab.runtime("lb1", f"set server {BACKEND}/{SERVER} state ready")
    lab.wait_all_up()
    time.sleep(0.3)


def measure(lab: Lab, watcher: Watcher, repeat: int) -> dict[str, Figures]:
    figures = {tool: Figures() for tool in TOOLS}
    for i in range(repeat):
        for tool, args in TOOLS.items():
            run = cycle(lab, *args)
            if run.rc != 0:
                raise SystemExit(f"{tool} failed:\n{run.output[-3000:]}")
            out, back, row = run.task("Take out"), run.task("Put back"), figures[tool]
            row.out.append(out.seconds)
            row.back.append(back.seconds)
            row.noop.append(run.task("Baseline").seconds)
            at_out = watcher.at(SERVER, out.end)
            row.drained.append(bool(at_out and at_out.admin_out and at_out.scur == 0 and at_out.qcur == 0))
            seen = [s for s in watcher.changes.get(SERVER, []) if back.start <= s.t <= back.end]
            steps = [s.status for i, s in enumerate(seen) if i == 0 or s.status != seen[i - 1].status]
            row.steps.append(">".join(steps))
            # The app is healthy throughout: a DOWN on the way back is the check HAProxy had to pass.
            row.checked.append(any(s.startswith("DOWN") for s in steps) and steps[-1:] == ["UP"])
            print(f"  run {i + 1} {tool}: out {out.seconds:.2f}s back {back.seconds:.2f}s ({row.steps[-1]})")
    return figures


def print_table(condition: str, figures: dict[str, Figures]) -> None:
    n = len(next(iter(figures.values())).out)
    print(f"\n{condition}: median (min-max) of {n} runs, seconds")
    print(f"{'tool':34} | {'take out':16} | {'put back':16} | {'total':16} | notes")
    for tool, row in figures.items():
        notes = (
            f"drained, scur=qcur=0 at return {sum(row.drained)}/{n}; UP after a real check "
            f"{sum(row.checked)}/{n} ({Counter(row.steps).most_common(1)[0][0]})"
        )
        print(f"{tool:34} | {spread(row.out):16} | {spread(row.back):16} | {spread(row.total):16} | {notes}")
    lb = statistics.median(figures["fleet.rollout.lb_member"].total)
    for tool in list(TOOLS)[:2]:
        print(f"ratio of totals, {tool} / lb_member: {statistics.median(figures[tool].total) / lb:.1f}x")


def flaws(lab: Lab) -> None:
    print("\ncommunity.general.haproxy as observed (single idle runs, take-out task only):")
    out_only = ["-e", "bench_take_out_only=true"]
    run = cycle(lab, *CG, *out_only, "-e", "bench_wait_retries=1", restore=False)
    status = next(r["status"] for r in show_stat(lab.balancers[0].socket) if r["svname"] == SERVER)
    print(
        f"- wait_retries=1: rc {run.rc}, {run.task('Take out').result.get('msg')!r}, yet HAProxy shows "
        f"{SERVER} {status}: range(1, wait_retries) polls wait_retries - 1 times, here never"
    )
    make_ready(lab)
    for tool, args in (("community.general", CG), ("lb_member", LB)):
        task = cycle(lab, *args, *out_only, "--check").task("Take out")
        members = task.result.get("members", [])
        said = task.result.get("msg") or f"changed={task.result.get('changed')}, " + ", ".join(
            f"predicted {m['status_before']} -> {m['status_after']}, commands {m['commands']}"
            for m in members
        )
        print(f"- --check, {tool}: task {task.status}: {said}")
    run = cycle(lab, *CG, *out_only, "-e", "bench_wait_interval=0.5")
    print(f"- wait_interval=0.5: rc {run.rc}, {str(run.task('Take out').result.get('msg'))[:150]!r}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    community_general()
    lab = Lab(TMP / "bench-lab")
    lab.up(hosts=4)
    try:
        with Watcher(lab.balancers[0].socket) as watcher:
            print(f"lab up: 4 hosts; {SERVER} out and back in, {args.repeat} runs per tool and condition")
            print(load())
            idle = measure(lab, watcher, args.repeat)
            traffic = Traffic(lab.frontend_url, rate=4, seconds=3600, path="/slow?seconds=1").start()
            try:
                time.sleep(1.5)  # about one 1-second request in flight on every server
                loaded = measure(lab, watcher, args.repeat)
            finally:
                result = traffic.stop()
            flaws(lab)
        print_table("idle", idle)
        print_table(f"1 s requests, 4/s ({result.sent} sent, {result.failed} failed)", loaded)
        noop = [x for row in idle.values() for x in row.noop]
        print(f"\nfixed cost of a no-op module task (ansible.builtin.ping, idle runs): {spread(noop)} s")
        print(f"at the end: {load()}")
    finally:
        lab.down()
    return 0


if __name__ == "__main__":
    sys.exit(main())
