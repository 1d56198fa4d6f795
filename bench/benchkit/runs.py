"""Timed ansible-playbook runs of the benches that roll a lab: what each host's roll took, and what the
controller spent on it (CPU of ansible-playbook and of everything it started, peak memory).

Per-host times come from bench/window_vs_serial/window_busy.py (a callback that logs every task start and
result on the controller's monotonic clock, the clock these runs are timed with).
"""

from __future__ import annotations

import heapq
import json
import os
import resource
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from bench.benchkit import ROOT, Span
from lab.fleet import Lab
from lab.sampling import Sampler
from lab.traffic import Traffic, TrafficResult

BUSY_CALLBACK_DIR = ROOT / "bench" / "window_vs_serial"
RESULTS = {"ok", "failed", "skipped", "unreachable"}
TRAFFIC_MAX_SECONDS = 3600.0
_T = TypeVar("_T")


@dataclass
class TimedRun:
    label: str
    version: str
    rc: int
    output: str
    wall: float
    cpu: float  # CPU seconds of ansible-playbook and everything it started (workers, modules, sleeps)
    main_cpu: float  # CPU seconds of ansible-playbook's main process alone (the strategy, the results)
    main_rss: int  # peak resident memory of the main process, bytes
    tree_pss: int  # peak proportional memory of the main process and its workers together, bytes
    machine_busy: float  # share of all cores busy during the run, everyone's work included
    load: tuple[float, float]  # 1-min load average at the start and at the end
    traffic: TrafficResult | None
    busy: dict[str, Span] = field(default_factory=dict)  # per host, in the play timed
    tasks: dict[str, list[float]] = field(default_factory=dict)  # seconds per task name, in that play
    plays: dict[str, Span] = field(default_factory=dict)  # every play, first task start to last result

    @property
    def play(self) -> Span:
        return Span(min(s.start for s in self.busy.values()), max(s.end for s in self.busy.values()))


def cpu_times() -> tuple[float, float]:
    """(busy, total) jiffies of all cores from /proc/stat."""
    fields = [float(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


class LoadSampler(Sampler):
    """The 1-minute load average, once a second, while the runs go."""

    def __init__(self) -> None:
        super().__init__(1.0, name="bench-load")
        self.samples: list[float] = []

    def sample(self) -> None:
        self.samples.append(os.getloadavg()[0])


def _children(pid: int) -> list[int]:
    """The process and its descendants (workers, module runs), as /proc lists them now."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            for task in Path(f"/proc/{current}/task").iterdir():
                todo += [int(x) for x in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def _pss(pid: int) -> int:
    """Proportional set size in bytes (forked workers share most pages with the main process)."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class ControllerSampler(Sampler):
    """ansible-playbook's main process every 0.1 s until it exits: its CPU time (not its children's), its
    peak RSS, and the peak PSS of it and its descendants together."""

    def __init__(self, pid: int) -> None:
        super().__init__(0.1, name="bench-controller")
        self.pid = pid
        self.seconds = 0.0
        self.main_rss = 0
        self.tree_pss = 0
        self._ticks = os.sysconf("SC_CLK_TCK")
        self._page = os.sysconf("SC_PAGE_SIZE")

    def sample(self) -> None:
        try:
            stat = Path(f"/proc/{self.pid}/stat").read_text()
        except OSError:
            self.stop()
            return
        fields = stat.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
        if fields[0] == "Z":
            self.stop()  # exited: a zombie's counters are its children's too
            return
        self.seconds = (int(fields[11]) + int(fields[12])) / self._ticks  # utime, stime
        self.main_rss = max(self.main_rss, int(fields[21]) * self._page)
        self.tree_pss = max(self.tree_pss, sum(_pss(pid) for pid in _children(self.pid)))


def timed_run(
    command: list[str],
    env: dict[str, str],
    *,
    label: str,
    version: str,
    log: Path,
    play: str,
    traffic: tuple[str, float],
) -> TimedRun:
    """Run one ansible-playbook command with the busy-time callback on and `traffic` (url, req/s; 0: none)
    through HAProxy; measure what the controller spent. `play` names the play whose hosts are timed."""
    log.parent.mkdir(parents=True, exist_ok=True)
    log.unlink(missing_ok=True)
    env = {
        **env,
        "ANSIBLE_CALLBACK_PLUGINS": str(BUSY_CALLBACK_DIR),
        "ANSIBLE_CALLBACKS_ENABLED": "window_busy",
        "WINDOW_BUSY_LOG": str(log),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
        "ANSIBLE_DEPRECATION_WARNINGS": "False",  # the one for third-party strategies (docs/strategy.md)
    }
    url, rate = traffic
    sender = Traffic(url, rate=rate, seconds=TRAFFIC_MAX_SECONDS).start() if rate else None
    load_before = os.getloadavg()[0]
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    machine_before = cpu_times()
    started = time.monotonic()
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT
    ) as process:
        controller = ControllerSampler(process.pid).start()
        output, _ = process.communicate()
        wall = time.monotonic() - started
        controller.stop()
    machine_after = cpu_times()
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    traffic_result = sender.stop() if sender else None
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    busy = (machine_after[0] - machine_before[0]) / max(1.0, machine_after[1] - machine_before[1])
    run = TimedRun(
        label,
        version,
        process.returncode,
        output,
        wall,
        cpu,
        controller.seconds,
        controller.main_rss,
        controller.tree_pss,
        busy,
        (load_before, os.getloadavg()[0]),
        traffic_result,
    )
    if log.exists():
        run.busy = spans(log, play)
        run.tasks = task_seconds(log, play)
        run.plays = play_spans(log)
    return run


def run_problems(lab: Lab, run: TimedRun) -> list[str]:
    """What went wrong: the exit code, hosts not on the version, hosts not timed, failed requests."""
    found = []
    if run.rc != 0:
        found.append(f"{run.label}: ansible-playbook exited {run.rc}:\n{run.output[-4000:]}")
    behind = [h.name for h in lab.hosts if h.current_release() != run.version]
    if behind:
        found.append(f"{run.label}: not on {run.version}: {', '.join(behind)}")
    untimed = sorted({h.name for h in lab.hosts} - set(run.busy))
    if untimed:
        found.append(f"{run.label}: no task times for {', '.join(untimed)}")
    if run.traffic and run.traffic.failed:
        found.append(f"{run.label}: {run.traffic.failed} of {run.traffic.sent} requests failed")
    return found


def _events(log: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def task_seconds(log: Path, play: str) -> dict[str, list[float]]:
    """Per task name (role prefix dropped): each host's seconds from its start to its result."""
    started: dict[tuple[str, str], float] = {}
    seconds: dict[str, list[float]] = {}
    for event in _events(log):
        if event["play"] != play or not event["host"]:
            continue
        key = (str(event["host"]), str(event["task"]))
        if event["event"] == "start":
            started[key] = float(str(event["t"]))
        elif event["event"] in RESULTS and key in started:
            name = key[1].split(" : ", 1)[-1]
            seconds.setdefault(name, []).append(float(str(event["t"])) - started.pop(key))
    return seconds


def play_spans(log: Path) -> dict[str, Span]:
    """Per play, in order: from its first task start to its last task result, any host."""
    found: dict[str, Span] = {}
    for event in _events(log):
        if not event["host"]:
            continue
        t = float(str(event["t"]))
        seen = found.get(str(event["play"]), Span(t, t))
        found[str(event["play"])] = Span(min(seen.start, t), max(seen.end, t))
    return found


def spans(log: Path, play: str) -> dict[str, Span]:
    """Per host: from its first task start to its last task result in the play named `play`."""
    starts: dict[str, float] = {}
    ends: dict[str, float] = {}
    for event in _events(log):
        if event["play"] != play or not event["host"]:
            continue
        host, t = str(event["host"]), float(str(event["t"]))
        if event["event"] == "start":
            starts[host] = min(t, starts.get(host, t))
        elif event["event"] in RESULTS:
            ends[host] = max(t, ends.get(host, t))
    return {h: Span(starts[h], ends[h]) for h in sorted(starts) if h in ends}


def lower_bound(busy: list[float], window: int) -> float:
    """No window of `window` hosts can do better: the busy time spread evenly, or the longest host."""
    return max(sum(busy) / window, *busy)


def in_order(seconds: list[float], window: int) -> float:
    """Wall time of a perfect window: hosts start in play order, each the instant a slot frees."""
    slots = [0.0] * window
    for busy in seconds:
        heapq.heappush(slots, heapq.heappop(slots) + busy)
    return max(slots)


def batches(hosts: list[_T], window: int) -> list[list[_T]]:
    """`serial: window` batches of the hosts (or of their times), in inventory order."""
    return [hosts[i : i + window] for i in range(0, len(hosts), window)]


def serial_batches(seconds: list[float], window: int) -> float:
    """Wall time of perfect `serial: window` batches: each batch takes its slowest host."""
    return sum(max(batch) for batch in batches(seconds, window))
