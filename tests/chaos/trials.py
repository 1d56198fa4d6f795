"""The chaos suite's trial runner: one seeded fault injected at a seeded moment of a real rollout under
traffic, then the outcome every trial must have.

A trial is ``(fault, seed)``. ``random.Random(f"{fault}:{seed}")`` picks the moment the fault lands (a
delay after the rollout started, a host seen drained on the balancer, or a host seen in a phase of its
cycle in the rollout's journal, each with a short seeded delay on top) and the host it aims at, so a
trial replays exactly (up to the machine's timing) with the same pair. The outcome, whatever the fault:
no client request failed, every host on one version (its link and its process) and UP on the balancer,
or, when the run failed, its report names each failed host with the step and the reason, the fleet is
still on one version and only those hosts may be out of rotation; no rollout lock and no hold watcher
left behind; every run's journal whole JSON that agrees with the run's exit.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import random
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ansible_collections.fleet.rollout.plugins.module_utils._hold import HoldFiles
from ansible_collections.fleet.rollout.plugins.module_utils._lock_record import LockRecord

from lab import haproxy
from lab.fleet import Lab, running_version
from lab.ports import pid_alive
from lab.traffic import Traffic, TrafficResult
from tests.integration.test_rollout_resume import kill_tree, where_it_was
from tests.support import ROOT, VENV_BIN, ansible_env

HOSTS = 3
RATE = 50  # requests per second through HAProxy while the rollout runs
WINDOW = 2
JOURNAL = "fleet.rollout.rollout_journal"
RUN_TIMEOUT = 600.0
POLL = 0.02
ADMIN_DRAIN = 0x08 | 0x10  # srv_admin_state: drain set by the runtime API (FDRAIN) or inherited (IDRAIN)

FAULTS = (
    "reload_lossy",
    "reload_keep_state",
    "haproxy_sigstop",
    "app_kill",
    "disk_full",
    "readonly_releases",
    "second_controller",
    "controller_sigkill",
)
MOUNT_FAULTS = ("disk_full", "readonly_releases")

RESULTS_HEADER = ("fault", "seed", "moment", "landed", "result", "converged", "failed_requests", "seconds")
SUMMARY = ("fault", "trials", "landed", "runs failed", "converged", "failed requests", "seconds")


def results_file() -> Path:
    """Where every trial appends its row (tab separated, a header first): ``CHAOS_RESULTS`` or
    ``.tmp/chaos/results.tsv``."""
    return Path(os.environ.get("CHAOS_RESULTS") or ROOT / ".tmp" / "chaos" / "results.tsv")


@dataclass
class Row:
    fault: str
    seed: int
    moment: str
    landed: bool
    result: str
    converged: bool
    failed_requests: int
    seconds: float
    run_ok: bool = True  # the judged run exited 0 (else it failed: cleanly, when it converged)

    def cells(self) -> tuple[str, ...]:
        return (
            self.fault,
            str(self.seed),
            self.moment,
            "yes" if self.landed else "no",
            self.result,
            "yes" if self.converged else "no",
            str(self.failed_requests),
            f"{self.seconds:.1f}",
        )


SESSION_ROWS: list[Row] = []  # this pytest session's rows, for the terminal summary


def append_row(row: Row) -> None:
    SESSION_ROWS.append(row)
    path = results_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists() or path.stat().st_size == 0
    with path.open("a") as out:
        if new:
            out.write("\t".join(RESULTS_HEADER) + "\n")
        out.write("\t".join(cell.replace("\t", " ") for cell in row.cells()) + "\n")


def summary_table(rows: list[Row]) -> list[str]:
    """Per fault: trials, how many of their faults landed (a rollout may end before its moment), how many
    of the runs judged failed (cleanly, when they converged), how many converged, failed requests and
    seconds; then the totals."""
    widths = [20, *(len(title) for title in SUMMARY[1:])]

    def line(cells: list[object]) -> str:
        return " ".join(
            str(cell).rjust(width) if i else str(cell).ljust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        )

    order = {fault: i for i, fault in enumerate(FAULTS)}
    faults = sorted({row.fault for row in rows}, key=lambda fault: order.get(fault, len(FAULTS)))
    groups = [*((fault, [row for row in rows if row.fault == fault]) for fault in faults), ("total", rows)]
    lines = [line(list(SUMMARY))]
    for name, mine in groups:
        lines.append(
            line(
                [
                    name,
                    len(mine),
                    sum(row.landed for row in mine),
                    sum(not row.run_ok for row in mine),
                    sum(row.converged for row in mine),
                    sum(row.failed_requests for row in mine),
                    round(sum(row.seconds for row in mine)),
                ]
            )
        )
    return lines


# ---- when the fault lands ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Moment:
    """When a fault lands: ``delay`` seconds after the rollout started (``kind`` "delay"), or once
    ``host`` is drained on the balancer ("drained") or in ``phase`` of its cycle in the journal ("phase"),
    then ``delay`` seconds more."""

    kind: str
    host: str
    phase: str = ""
    delay: float = 0.0

    def describe(self) -> str:
        if self.kind == "delay":
            return f"{self.delay:.2f}s after start"
        what = "drained" if self.kind == "drained" else f"in {self.phase}"
        return f"{self.host} {what} +{self.delay:.2f}s"


def pick_moment(fault: str, rng: random.Random, hosts: list[str]) -> Moment:
    """The seeded moment of ``fault``: each fault lands only where it means something (an app is killed
    only while its host is out of rotation; a full or read-only disk before or during a host's staging)."""
    host = rng.choice(hosts)
    if fault == "app_kill":
        kind = rng.choice(["drained", "phase", "phase"])
        return Moment(
            kind, host, rng.choice(["switch", "verify"]) if kind == "phase" else "", rng.uniform(0, 0.3)
        )
    if fault in MOUNT_FAULTS:
        # Where a full or read-only releases directory bites: before the rollout stages the release (every
        # target at once, before the first drain), or as it stages it on the host (the journal's "stage").
        kind = rng.choice(["delay", "phase", "phase"])
        if kind == "delay":
            return Moment("delay", host, delay=rng.uniform(0.3, 2.0))  # in the preflight, or in the staging
        return Moment("phase", host, "stage", rng.uniform(0, 0.02))
    phases = {
        "controller_sigkill": ["stage", "drain", "switch", "verify", "enable"],
        "second_controller": ["stage", "drain", "verify"],
    }.get(fault, ["drain", "switch", "verify", "enable"])
    kind = rng.choice(["delay", "drained", "phase"])
    if kind == "delay":
        return Moment("delay", host, delay=rng.uniform(0.5, 3.5))  # a 3-host rollout takes some 4-5 s
    return Moment(kind, host, rng.choice(phases) if kind == "phase" else "", rng.uniform(0, 0.4))


def admin_states(lab: Lab) -> dict[str, int]:
    """``srv_admin_state`` of every server of the app backend on the first balancer."""
    lines = lab.runtime("lb1", "show servers state app").splitlines()
    columns = lines[1].lstrip("# ").split()
    rows = [dict(zip(columns, line.split(), strict=False)) for line in lines[2:] if line.strip()]
    return {row["srv_name"]: int(row["srv_admin_state"]) for row in rows}


def is_drained(lab: Lab, host: str) -> bool:
    try:
        return bool(admin_states(lab).get(host, 0) & ADMIN_DRAIN)
    except (OSError, IndexError, KeyError, ValueError):
        return False  # between two processes of a reload


def read_journal(directory: Path) -> dict[str, Any] | None:
    found = sorted(directory.glob("*.json")) if directory.exists() else []
    if not found:
        return None
    loaded: dict[str, Any] = json.loads(found[-1].read_text())  # every write is whole
    return loaded


def reached_phase(directory: Path, host: str, phase: str) -> bool:
    """The journal shows ``host`` in ``phase`` (running it, or past it: a short phase can fall between
    two looks)."""
    journal = read_journal(directory)
    if journal is None or host not in journal["hosts"]:
        return False
    entry = journal["hosts"][host]
    running = (entry.get("running") or {}).get("phase")
    return running == phase or phase in [p["phase"] for p in entry["phases"]]


# ---- the rollout ------------------------------------------------------------------------------------


@dataclass
class Controller:
    """One ansible-playbook of the deploy, in a process group of its own, journaled apart."""

    process: subprocess.Popen[bytes]
    name: str
    log: Path
    journal_dir: Path
    started: float
    rc: int | None = None
    seconds: float = 0.0  # from its start to its end

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait(self, timeout: float = RUN_TIMEOUT) -> int:
        self.rc = self.process.wait(timeout=timeout)
        self.seconds = time.monotonic() - self.started
        return self.rc

    def running(self) -> bool:
        return self.process.poll() is None


@dataclass
class Rollout:
    """The deploy of ``version`` on the lab, every run of it (the first, a rival, a re-run) logged and
    journaled in ``work``."""

    lab: Lab
    work: Path
    version: str = "v2"
    runs: list[Controller] = field(default_factory=list)

    @property
    def lock_dir(self) -> Path:
        return self.lab.state_dir.resolve() / "locks"  # the lab inventory's deploy_lock_dir

    def command(self, journal_dir: Path) -> list[str]:
        artifact = self.lab.build(self.version)
        return [
            *(str(VENV_BIN / "ansible-playbook"), "-i", str(self.lab.inventory), "fleet.rollout.deploy"),
            *("-f", "10", "-e", f"deploy_version={self.version}", "-e", f"deploy_artifact={artifact}"),
            *("-e", f"rollout_window={WINDOW}", "-e", "rollout_canary=1"),
            *("-e", f"rollout_journal_dir={journal_dir}"),
        ]

    def start(self, name: str) -> Controller:
        journal_dir = self.work / f"{name}-journal"
        log = self.work / f"{name}.log"
        env = ansible_env(ANSIBLE_CALLBACKS_ENABLED=JOURNAL, FLEET_ROLLOUT_JOURNAL_WRITE_INTERVAL="0.05")
        with log.open("wb") as out:
            process = subprocess.Popen(
                self.command(journal_dir),
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        run = Controller(process, name, log, journal_dir, time.monotonic())
        self.runs.append(run)
        return run

    def stop_all(self) -> None:
        """Nothing a trial started outlives it: a run still going (a failed assertion) is killed."""
        for run in self.runs:
            if run.running():
                kill_tree(run.process, hosts_dir=f"{self.lab.state_dir.resolve()}/hosts/")


def moment_reached(lab: Lab, run: Controller, moment: Moment) -> bool:
    if moment.kind == "drained":
        return is_drained(lab, moment.host)
    if moment.kind == "phase":
        return reached_phase(run.journal_dir, moment.host, moment.phase)
    return True


def wait_for_moment(
    lab: Lab, run: Controller, moment: Moment, also: Callable[[], bool] | None = None
) -> bool:
    """Poll until ``moment`` (and ``also``, when given, at the same look); False when the run ended first."""
    end = run.started + RUN_TIMEOUT
    while not (moment_reached(lab, run, moment) and (also is None or also())):
        if not run.running() or time.monotonic() > end:
            return False
        time.sleep(POLL)
    landing = time.monotonic() + moment.delay  # the seeded delay of when, within the moment
    while time.monotonic() < landing:
        if not run.running():
            return False
        time.sleep(POLL)
    return run.running()


def wait_for_traffic(lab: Lab, requests: int = 5, deadline: float = 10.0) -> None:
    """Until the balancer has sent ``requests`` to the servers: traffic flows before the rollout starts."""
    end = time.monotonic() + deadline
    while sum(int(row["stot"] or 0) for row in haproxy.show_stat(lab.balancers[0].socket)) < requests:
        assert time.monotonic() < end, "no traffic reached the servers"
        time.sleep(POLL)


# ---- faults -----------------------------------------------------------------------------------------


def mount_problem(scratch: Path) -> str | None:
    """Why this machine cannot mount a tmpfs or a read-only bind mount for a trial (not root, no
    CAP_SYS_ADMIN, a container that forbids it), or None when it can: tried once on a scratch directory."""
    scratch.mkdir(parents=True, exist_ok=True)
    probe = scratch / "mount-probe"
    probe.mkdir(exist_ok=True)
    tried = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(probe)],
        capture_output=True,
        text=True,
        check=False,
    )
    if tried.returncode != 0:
        return f"cannot mount here ({tried.stderr.strip() or tried.returncode})"
    subprocess.run(["umount", str(probe)], check=True)
    bound = subprocess.run(
        ["mount", "--bind", str(probe), str(probe)], capture_output=True, text=True, check=False
    )
    if bound.returncode != 0:
        return f"cannot bind-mount here ({bound.stderr.strip()})"
    readonly = subprocess.run(
        ["mount", "-o", "remount,bind,ro", str(probe)], capture_output=True, text=True, check=False
    )
    subprocess.run(["umount", str(probe)], check=True)
    if readonly.returncode != 0:
        return f"cannot remount read-only here ({readonly.stderr.strip()})"
    return None


@contextlib.contextmanager
def releases_mount(lab: Lab, host: str, fault: str) -> Iterator[Path]:
    """The host's ``releases`` directory on a mount of its own for the trial: a 16 MB tmpfs holding a copy
    of what it held (disk_full), or a bind mount of itself (readonly_releases), still writable until the
    fault lands. Unmounted after (lazily: the host's app may still run from it until the lab goes down)."""
    releases = lab.host(host).root / "releases"
    if fault == "disk_full":
        stash = releases.parent / ".releases-before-tmpfs"
        shutil.copytree(releases, stash, symlinks=True)
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=16m,mode=0755", "tmpfs", str(releases)], check=True
        )
        shutil.copytree(stash, releases, symlinks=True, dirs_exist_ok=True)
    else:
        subprocess.run(["mount", "--bind", str(releases), str(releases)], check=True)
    try:
        yield releases
    finally:
        subprocess.run(["umount", "-l", str(releases)], check=False)


def fill(directory: Path) -> int:
    """Write into ``directory`` until its file system has no byte left (ENOSPC); the bytes written."""
    written = 0
    with (directory / ".chaos-filler").open("wb", buffering=0) as out:
        for size in (1 << 20, 4096, 1):
            chunk = b"\0" * size
            while True:
                try:
                    written += out.write(chunk) or 0
                except OSError as full:
                    if full.errno != errno.ENOSPC:
                        raise
                    break
    return written


def make_readonly(directory: Path, deadline: float = 5.0) -> None:
    """Remount the bind mount of ``directory`` read-only (retried while a file there is open for writing,
    which makes the kernel refuse)."""
    end = time.monotonic() + deadline
    while True:
        done = subprocess.run(
            ["mount", "-o", "remount,bind,ro", str(directory)], capture_output=True, text=True, check=False
        )
        if done.returncode == 0:
            return
        assert time.monotonic() < end, f"could not remount {directory} read-only: {done.stderr}"
        time.sleep(POLL)


def sigstop_haproxy(lab: Lab, seconds: float) -> int:
    """SIGSTOP the HAProxy worker that serves the frontend and the runtime API for ``seconds``, then
    SIGCONT it (in a finally: it never stays stopped); its pid."""
    pid = haproxy.worker_pid(lab.balancers[0].socket)
    assert pid is not None, "no HAProxy worker answers"
    os.kill(pid, signal.SIGSTOP)
    try:
        time.sleep(seconds)  # the fault's own length, not a wait for a condition
    finally:
        os.kill(pid, signal.SIGCONT)
    return pid


def kill_app_if_drained(lab: Lab, host: str) -> bool:
    """SIGKILL the host's app process, but only while the balancer holds the host out of rotation (a
    process killed in rotation fails requests whatever a rollout does); whether it was killed."""
    if not is_drained(lab, host):
        return False
    pid = lab.host(host).service.pid()
    if pid is None:
        return False  # between the stop and the start of its restart
    os.kill(pid, signal.SIGKILL)
    return True


# ---- the outcome ------------------------------------------------------------------------------------


def report(output: str) -> dict[str, Any] | None:
    """The deploy playbook's report (its last play's message), or None when the run never got there."""
    marker = "PLAY [Report how the rollout ended]"
    if marker not in output:
        return None
    text = output[output.index(marker) :]
    start = text.find("{")
    ends = [i for i in (text.find("\nTASK [", start), text.find("\nPLAY RECAP", start)) if i >= 0]
    if start < 0 or not ends:
        return None
    with contextlib.suppress(ValueError, KeyError):
        return dict(json.loads(text[start : min(ends)])["msg"])
    return None


def failure_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if "FAILED!" in line or "failed at '" in line][:8]


def fleet_view(lab: Lab) -> dict[str, tuple[str | None, str | None, str, str]]:
    """Every host: its current release, the version its process answers with, its status and admin
    state on every balancer (joined)."""
    views = []
    for balancer in lab.balancers:
        states = {row["svname"]: row["status"] for row in haproxy.show_stat(balancer.socket)}
        lines = haproxy.runtime_command(balancer.socket, "show servers state app").splitlines()
        columns = lines[1].lstrip("# ").split()
        admin = {
            row["srv_name"]: "ready"
            if int(row["srv_admin_state"]) == 0
            else f"admin {row['srv_admin_state']}"
            for row in (dict(zip(columns, line.split(), strict=False)) for line in lines[2:] if line.strip())
        }
        views.append((states, admin))
    return {
        host.name: (
            host.current_release(),
            running_version(host),
            "/".join(states[host.name] for states, _ in views),
            "/".join(admin[host.name] for _, admin in views),
        )
        for host in lab.hosts
    }


def wait_until_settled(
    lab: Lab, deadline: float = 10.0
) -> dict[str, tuple[str | None, str | None, str, str]]:
    """The fleet's view once HAProxy's checks have caught up with the last change (a server's status
    moves through its rise checks after an enable), or as it is at ``deadline``."""
    end = time.monotonic() + deadline
    while True:
        view = fleet_view(lab)
        if all(s == "UP" and a == "ready" for _, _, s, a in view.values()) or time.monotonic() > end:
            return view
        time.sleep(0.1)


def held_locks(lock_dir: Path) -> list[str]:
    return sorted(p.name for p in lock_dir.glob("*.lock")) if lock_dir.exists() else []


def live_hold_watchers(lab: Lab) -> list[str]:
    """Hold watchers (lb_member's ``hold``) still running for a server of this lab."""
    sockets = [str(balancer.socket) for balancer in lab.balancers]
    found = []
    for host in lab.hosts:
        events = Path(HoldFiles.of(host.name, sockets).events)
        with contextlib.suppress(OSError, ValueError):
            pid = json.loads(events.read_text()).get("pid")
            if isinstance(pid, int) and pid_alive(pid):
                found.append(f"{host.name} (pid {pid})")
    return found


def lock_holder(lock_dir: Path) -> LockRecord | None:
    with contextlib.suppress(OSError, ValueError, KeyError):
        return LockRecord.from_json((lock_dir / "app.lock").read_bytes())
    return None


@dataclass
class Outcome:
    """What a trial found; ``problems`` empty when the outcome is the one every trial must have."""

    problems: list[str] = field(default_factory=list)
    converged: bool = False
    result: str = ""
    notes: list[str] = field(default_factory=list)

    def check(self, ok: bool, problem: str) -> None:
        if not ok:
            self.problems.append(problem)


def check_journal(outcome: Outcome, run: Controller, killed: bool = False) -> dict[str, Any] | None:
    """The run's journal is whole JSON and agrees with how the run ended."""
    found = sorted(run.journal_dir.glob("*.json")) if run.journal_dir.exists() else []
    if killed and not found:
        return None  # killed before its first play: no journal, and (checked apart) no lock
    if len(found) != 1:
        outcome.problems.append(f"{run.name}: {len(found)} journals in {run.journal_dir}")
        return None
    try:
        journal: dict[str, Any] = json.loads(found[0].read_text())
    except ValueError as bad:
        outcome.problems.append(f"{run.name}: journal {found[0]} is not JSON: {bad}")
        return None
    if killed:
        wanted = {"running", "succeeded"}  # killed while it exited, its recap written: it had finished
    elif run.rc == 0:
        wanted = {"succeeded"}
    else:
        wanted = {"failed", "halted", "interrupted"}
    outcome.check(journal.get("result") in wanted, f"{run.name}: journal result {journal.get('result')!r}")
    return journal


def check_fleet(outcome: Outcome, lab: Lab, run: Controller, version: str) -> None:
    """Every host on one version and UP (rc 0: the new version); a failed run names every failed host
    with its step and its reason, and only those may be out of rotation."""
    view = wait_until_settled(lab)
    versions = {current for current, _, _, _ in view.values()}
    outcome.check(len(versions) == 1, f"the fleet is on {sorted(map(str, versions))}: {view}")
    for name, (current, answering, _status, _admin) in view.items():
        outcome.check(current == answering, f"{name}: current {current} but its process answers {answering}")
    not_up = sorted(
        name for name, (_, _, status, admin) in view.items() if not (status == "UP" and admin == "ready")
    )
    output = run.output()
    if run.rc == 0:
        outcome.check(versions == {version}, f"rc 0, yet the fleet is on {versions}")
        outcome.check(not not_up, f"rc 0, yet not UP and ready: {[(n, view[n]) for n in not_up]}")
        outcome.converged = len(versions) == 1 and not not_up
        return
    staging = re.search(
        rf"staging {re.escape(version)} failed on \d+ of \d+ targets, before any host left[^\n]*", output
    )
    if staging is not None:  # refused while every host still served: nothing may be out of rotation
        outcome.notes.append(f"{run.name}: {staging.group(0)[:300]}")
        outcome.check(
            re.search(r": app\d+: ", staging.group(0)) is not None, f"no host named: {staging.group(0)}"
        )
        outcome.check(not not_up, f"staging failed, yet not UP and ready: {[(n, view[n]) for n in not_up]}")
        outcome.converged = len(versions) == 1 and not not_up
        return
    said = report(output)
    if said is None:
        outcome.problems.append(
            f"{run.name} failed (rc {run.rc}) without its report: {failure_lines(output)}"
        )
        return
    failed: dict[str, str] = said.get("failed") or {}
    reasons: dict[str, str] = said.get("reasons") or {}
    outcome.notes.append(f"{run.name}: {said.get('result')}; failed {failed}; reasons {reasons}")
    outcome.check(bool(failed) or bool(said.get("analysis")), f"{run.name} failed naming no host: {said}")
    for name, step in failed.items():
        outcome.check(
            bool(step) and bool(reasons.get(name)), f"{name} failed without its step and reason: {said}"
        )
        outcome.check(
            f"{name}: " in output and "failed at '" in output,
            f"no failure line names {name}: {failure_lines(output)}",
        )
    stray = [name for name in not_up if name not in failed]
    outcome.check(not stray, f"out of rotation, yet not named failed: {[(n, view[n]) for n in stray]}")
    outcome.converged = len(versions) == 1 and not not_up


def check_leftovers(outcome: Outcome, rollout: Rollout) -> None:
    locks = held_locks(rollout.lock_dir)
    outcome.check(not locks, f"rollout locks left held in {rollout.lock_dir}: {locks}")
    leases = [h.name for h in rollout.lab.hosts if (h.root / "rollout-lease.lock").exists()]
    outcome.check(not leases, f"host leases left held: {leases}")
    watchers = live_hold_watchers(rollout.lab)
    outcome.check(not watchers, f"hold watchers left running: {watchers}")


def check_traffic(outcome: Outcome, seen: TrafficResult, lab: Lab) -> None:
    outcome.check(seen.failed == 0, f"{seen.failed} of {seen.sent} requests failed: {seen.failures()[:5]}")
    if seen.failed:  # where HAProxy saw them fail: per server, failed connects, retries, aborts, errors
        keys = ("econ", "eresp", "wretr", "wredis", "cli_abrt", "srv_abrt", "status")
        with contextlib.suppress(OSError, ValueError):
            counters = {
                row["svname"]: {key: row.get(key) for key in keys}
                for row in haproxy.show_stat(lab.balancers[0].socket)
            }
            outcome.notes.append(f"balancer counters: {counters}")


def start_traffic(lab: Lab) -> Traffic:
    return Traffic(lab.frontend_url, rate=RATE, seconds=1800).start()


# ---- one trial --------------------------------------------------------------------------------------


@dataclass
class Trial:
    """``(fault, seed)`` on ``lab``: its moment, what happened, and the outcome."""

    lab: Lab
    work: Path
    fault: str
    seed: int
    moment: Moment = field(init=False)
    landed: bool = False
    outcome: Outcome = field(default_factory=Outcome)
    started: float = field(init=False, default=0.0)

    def __post_init__(self) -> None:
        rng = random.Random(f"{self.fault}:{self.seed}")
        self.rng = rng
        self.moment = pick_moment(self.fault, rng, [host.name for host in self.lab.hosts])
        self.rollout = Rollout(self.lab, self.work)

    def mark(self, event: str) -> None:
        """Note when something happened, in seconds of the traffic's clock (a failed request's ``t``)."""
        self.outcome.notes.append(f"{time.monotonic() - self.started:.2f}s {event}")

    def run(self) -> Row:
        started = self.started = time.monotonic()
        final_rc: int | None = None
        load = start_traffic(self.lab)
        try:
            with contextlib.ExitStack() as stack:
                releases = None
                if self.fault in MOUNT_FAULTS:
                    releases = stack.enter_context(releases_mount(self.lab, self.moment.host, self.fault))
                wait_for_traffic(self.lab)
                final = self.roll(releases)
                final_rc = final.rc
                check_fleet(self.outcome, self.lab, final, self.rollout.version)
                check_leftovers(self.outcome, self.rollout)
        finally:
            self.rollout.stop_all()
            seen = load.stop()
        check_traffic(self.outcome, seen, self.lab)
        self.outcome.converged = self.outcome.converged and not self.outcome.problems
        return Row(
            self.fault,
            self.seed,
            self.moment.describe(),
            self.landed,
            self.outcome.result,
            self.outcome.converged,
            seen.failed,
            time.monotonic() - started,
            run_ok=final_rc == 0,
        )

    def roll(self, releases: Path | None) -> Controller:
        """The rollout with its fault; the run whose end the fleet is judged by."""
        first = self.rollout.start("run")
        self.mark("rollout started")
        # An app is killed only while its host is out of rotation: its phase and the balancer's drain at once.
        drained = (lambda: is_drained(self.lab, self.moment.host)) if self.fault == "app_kill" else None
        self.landed = wait_for_moment(self.lab, first, self.moment, drained)
        self.mark(
            f"fault lands: {self.fault}" if self.landed else "the rollout ended before the fault's moment"
        )
        final = self.inject(first, releases) if self.landed else first
        if final.rc is None:
            final.wait()
        self.mark(f"{final.name} ended rc {final.rc}")
        if final is first and self.fault not in ("second_controller", "controller_sigkill"):
            check_journal(self.outcome, first)  # (those two check every run's journal themselves)
        self.outcome.result = self.outcome.result or (
            "succeeded" if final.rc == 0 else f"failed rc {final.rc}"
        )
        redrained = sum(run.output().count("found back in rotation") for run in self.rollout.runs)
        if redrained:  # the evidence that a reload (or a stall) bit: servers drained again
            self.outcome.result += f"; {redrained} warnings of a server found back in rotation"
        return final

    def inject(self, first: Controller, releases: Path | None) -> Controller:
        lab, fault = self.lab, self.fault
        if fault in ("reload_lossy", "reload_keep_state"):
            lab.reload_balancer("lb1", keep_state=fault == "reload_keep_state")
        elif fault == "haproxy_sigstop":
            pid = sigstop_haproxy(lab, self.rng.uniform(1.0, 2.0))
            self.mark(f"SIGCONT to HAProxy worker {pid}")
        elif fault == "app_kill":
            self.landed = kill_app_if_drained(lab, self.moment.host)
        elif fault == "disk_full":
            assert releases is not None
            fill(releases)
        elif fault == "readonly_releases":
            assert releases is not None
            make_readonly(releases)
        elif fault == "second_controller":
            return self.rival(first)
        elif fault == "controller_sigkill":
            return self.kill_and_rerun(first)
        else:
            raise AssertionError(f"no such fault {fault}")
        return first

    def rival(self, first: Controller) -> Controller:
        """A second controller starts the same rollout (same lock directory): exactly one of the two runs,
        the one that came second to the lock, fails at once naming the other as the holder, before any
        host is touched; the other goes on. The one that went on is judged."""
        second = self.rollout.start("rival")
        second.wait()
        if second.rc == 0:  # the rival took the lock first: the first run had not taken it yet
            first.wait()
            winner, loser = second, first
        else:
            winner, loser = first, second
        if loser.rc is None:
            loser.wait()
        out = loser.output()
        self.outcome.check(loser.rc != 0, f"both controllers' runs went on: {loser.name} rc {loser.rc}")
        self.outcome.check(
            "is held by run" in out and f"pid {winner.process.pid}" in out,
            f"{loser.name} did not fail naming the holder (pid {winner.process.pid}): {failure_lines(out)}",
        )
        self.outcome.check(
            "PLAY [Roll the release across the targets]" not in out, f"{loser.name} went on to roll hosts"
        )
        check_journal(self.outcome, loser)
        if winner.rc is None:
            winner.wait()
        check_journal(self.outcome, winner)
        self.outcome.result = f"{loser.name} refused in {loser.seconds:.1f}s; {winner.name} " + (
            "succeeded" if winner.rc == 0 else f"failed rc {winner.rc}"
        )
        return winner

    def kill_and_rerun(self, first: Controller) -> Controller:
        """SIGKILL the controller (ansible-playbook and everything it started), then run the same command
        again: it takes a dead holder's lock over and must converge."""
        kill_tree(first.process, hosts_dir=f"{self.lab.state_dir.resolve()}/hosts/")
        held = lock_holder(self.rollout.lock_dir)  # what the dead run left
        first.rc = first.process.returncode
        journal = check_journal(self.outcome, first, killed=True)
        if journal is None:
            self.outcome.check(not held_locks(self.rollout.lock_dir), "no journal, yet a lock was left")
        again = self.rollout.start("rerun")
        again.wait()
        rerun_journal = check_journal(self.outcome, again) or {}
        out = again.output()
        self.outcome.check(
            again.rc == 0, f"the re-run did not converge (rc {again.rc}): {failure_lines(out)}"
        )
        if held is not None:
            self.outcome.check(
                f"took over rollout lock 'app' from run {held.run_id}" in out,
                f"the re-run did not say it took the dead run's lock over: {failure_lines(out)}",
            )
            takeovers = [entry.get("takeover") for entry in rerun_journal.get("lock_takeovers", [])]
            # the dead run's rollout lock, then the leases it held on the hosts in their cycle
            self.outcome.check(
                takeovers[:1] == ["holder_gone"] and set(takeovers[1:]) <= {"handed_over"},
                f"the re-run's journal audits {takeovers}",
            )
        doing = where_it_was(journal) if journal and journal.get("result") == "running" else "no journal yet"
        self.outcome.result = f"killed [{doing}]; rerun " + (
            "succeeded" if again.rc == 0 else f"failed rc {again.rc}"
        )
        return again
