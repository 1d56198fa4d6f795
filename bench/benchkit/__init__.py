"""Shared parts of the benches: community.general from PyPI, timed playbook runs, a balancer watcher."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.haproxy import runtime_command, show_stat
from lab.sampling import Sampler

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench"
TMP = ROOT / ".tmp"
WHEEL_CACHE = TMP / "bench-cache"
BENCH_COLLECTIONS = TMP / "bench-collections"
CG = "ansible_collections/community/general"
CG_FILES = (f"{CG}/plugins/modules/haproxy.py",)  # all the loader needs (no meta/runtime.yml)
ADMIN_OUT = 0x7F  # srv_admin_state bits: forced/inherited/config maint, forced/inherited drain, ...


def community_general() -> Path:
    """The collection path holding community.general.haproxy, unpacked once from the `ansible` wheel."""
    if not all((BENCH_COLLECTIONS / name).is_file() for name in CG_FILES):
        wheels = sorted(WHEEL_CACHE.glob("ansible-12.*.whl"))
        if not wheels:
            print("bench: fetching the ansible 12 wheel (community.general) with pip, once", flush=True)
            pip = [sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check", "--no-deps"]
            subprocess.run([*pip, "ansible==12.*", "-d", str(WHEEL_CACHE)], check=True)
            wheels = sorted(WHEEL_CACHE.glob("ansible-12.*.whl"))
        with zipfile.ZipFile(wheels[-1]) as wheel:
            for name in CG_FILES:
                wheel.extract(name, BENCH_COLLECTIONS)
    return BENCH_COLLECTIONS


def ansible_env(task_times: Path) -> dict[str, str]:
    """This checkout as fleet.rollout, community.general beside it, and the task_times callback on."""
    paths = [TMP / "collections", community_general()]
    return {
        **os.environ,
        "ANSIBLE_COLLECTIONS_PATH": ":".join(str(p) for p in paths),
        "ANSIBLE_CALLBACK_PLUGINS": str(BENCH / "callback"),
        "ANSIBLE_CALLBACKS_ENABLED": "task_times",
        "BENCH_TASK_TIMES": str(task_times),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
        "ANSIBLE_LOCALHOST_WARNING": "False",
        "ANSIBLE_DEPRECATION_WARNINGS": "False",
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
    }


@dataclass(frozen=True)
class Span:
    """From start to end, on one clock."""

    start: float
    end: float

    @property
    def seconds(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class TaskTime(Span):
    """One task on one host, as bench/callback/task_times.py saw it start and end."""

    host: str
    task: str
    status: str
    result: dict[str, Any]


@dataclass
class Run:
    rc: int
    output: str
    started: float
    ended: float
    tasks: list[TaskTime]

    @property
    def wall(self) -> float:
        return self.ended - self.started

    def task(self, prefix: str, host: str | None = None) -> TaskTime:
        return next(t for t in self.tasks if t.task.startswith(prefix) and host in (None, t.host))


def run_playbook(playbook: str, inventory: str, *args: str, work: Path) -> Run:
    """ansible-playbook with per-task timestamps (bench/callback/task_times.py) and its wall time."""
    work.mkdir(parents=True, exist_ok=True)
    times = work / "task_times.jsonl"
    times.unlink(missing_ok=True)
    command = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", inventory, playbook, *args]
    started = time.time()
    done = subprocess.run(command, capture_output=True, text=True, env=ansible_env(times), check=False)
    ended = time.time()
    lines = times.read_text().splitlines() if times.exists() else []
    tasks = [TaskTime(**{k: v for k, v in json.loads(x).items() if k != "action"}) for x in lines]
    return Run(done.returncode, done.stdout + done.stderr, started, ended, tasks)


@dataclass(frozen=True)
class Seen:
    """One server as one sample of the balancer saw it."""

    t: float
    status: str
    admin: int
    scur: int
    qcur: int

    @property
    def admin_out(self) -> bool:
        return bool(self.admin & ADMIN_OUT)


@dataclass
class OutOfRotation:
    """From the first sample not `UP` to the first sample back at `UP`; ready: the admin state's return."""

    start: float
    end: float | None = None
    ready: float | None = None
    statuses: list[str] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return (self.end or self.start) - self.start

    @property
    def rise(self) -> float | None:
        """HAProxy's own checks: from the sample that saw the server ready again to the sample seeing UP."""
        return None if self.end is None or self.ready is None else self.end - self.ready


class Watcher(Sampler):
    """Samples `show stat` and `show servers state` every `period` seconds and keeps each server's changes."""

    def __init__(self, socket: Path, period: float = 0.01) -> None:
        super().__init__(period, name="bench-watcher")
        self.socket = socket
        self.changes: dict[str, list[Seen]] = {}
        self.samples = 0

    def _admin_states(self) -> dict[str, int]:
        lines = runtime_command(self.socket, "show servers state").splitlines()
        rows = [line.split() for line in lines[2:] if line.strip()]
        return {row[3]: int(row[6]) for row in rows}

    def sample(self) -> None:
        before = time.time()
        rows, admin = show_stat(self.socket), self._admin_states()
        t = (before + time.time()) / 2
        self.samples += 1
        for row in rows:
            name = row["svname"]
            seen = Seen(t, row["status"], admin.get(name, 0), int(row["scur"] or 0), int(row["qcur"] or 0))
            history = self.changes.setdefault(name, [])
            if not history or (seen.status, seen.admin, seen.scur, seen.qcur) != (
                (last := history[-1]).status,
                last.admin,
                last.scur,
                last.qcur,
            ):
                history.append(seen)

    def settle(self, timeout: float = 10.0) -> None:
        """Keep sampling until every server seen is back at `UP` (a playbook may end before its last
        host's rise checks do), or until ``timeout``."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            servers = [h for name, h in list(self.changes.items()) if name not in ("FRONTEND", "BACKEND")]
            last = [history[-1] for history in servers if history]
            if last and all(seen.status == "UP" for seen in last):
                return
            time.sleep(self.period)

    def at(self, server: str, t: float) -> Seen | None:
        """The server as the last sample at or before t saw it."""
        seen = [s for s in self.changes.get(server, []) if s.t <= t]
        return seen[-1] if seen else None

    def out_of_rotation(self, server: str) -> list[OutOfRotation]:
        spans: list[OutOfRotation] = []
        was_out = False
        for seen in self.changes.get(server, []):
            span = spans[-1] if spans and spans[-1].end is None else None
            if span is None and seen.status != "UP":
                span = OutOfRotation(seen.t)
                spans.append(span)
            if span is not None:
                if not span.statuses or span.statuses[-1] != seen.status:
                    span.statuses.append(seen.status)
                if was_out and not seen.admin_out:
                    span.ready = seen.t  # the last return from drain/maint in the span counts
                if seen.status == "UP":
                    span.end = seen.t
            was_out = seen.admin_out
        return spans


def load() -> str:
    """The machine's load averages: other test runs share its cores and slow every figure down."""
    return "load average " + " ".join(f"{x:.1f}" for x in os.getloadavg()) + f" on {os.cpu_count()} cores"


def spread(values: list[float]) -> str:
    """median (min-max) of values, in seconds."""
    if not values:
        return "n/a"
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"
