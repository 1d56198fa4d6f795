# Copyright (c) fleet.rollout developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
# Private to this collection: not a public API, may change without notice.
"""The rollout journal of the fleet.rollout.rollout_journal callback: what it records (how it is written:
_journal_file.py).

Pure Python with no Ansible imports, so it is unit-tested on its own. The callback turns Ansible's events
into calls on :class:`Journal` (a host's task started, a task finished with a status) and hands the
journal file the moments the journal changed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ansible_collections.fleet.rollout.plugins.plugin_utils._json_values import plain, short
from ansible_collections.fleet.rollout.plugins.plugin_utils._outcome import decide

FORMAT_VERSION = 1

# Task statuses the callback reports. "ignored" is a failure the task's ignore_errors let pass.
OK = "ok"
CHANGED = "changed"
FAILED = "failed"
UNREACHABLE = "unreachable"
SKIPPED = "skipped"
IGNORED = "ignored"
_SEVERITY = {OK: 0, IGNORED: 0, CHANGED: 1, FAILED: 2, UNREACHABLE: 3}

# Host outcomes. While the run goes on: waiting (no phase of the roles yet), running, failed (its last task
# failed; a rescue may still bring it back). At the end, from the play recap, those of _outcome: ok,
# reverted, failed, unreachable, or untouched (no task of the roles ran on it).
WAITING, RUNNING = "waiting", "running"

# Phases of tasks outside the roles: before the host's first role task, and after it.
PREFLIGHT, AFTER = "preflight", "after"
# The deploy role's main.yml (and any role's argument validation) only checks its input.
CHECK = "check"
# Staging (the deploy playbook stages every target before the first drain) changes neither current nor
# rotation: a host only staged has not started its cycle.
STAGE = "stage"
RECOVER = "recover"
# The deploy role's lease.yml: a host's lease taken and given back is bookkeeping, journaled only when it
# fails (held by another run).
LEASE = "lease"
ROLLBACK = "rollback"
ANALYSIS = "judge"  # the deploy role's judge.yml: release analysis (gates, bakes, final check)

_ROLE_FILE = re.compile(r"(?:^|/)roles/(deploy|rollback)/tasks/([^/]+?)\.ya?ml(?::\d+)?$")
_NOT_IN_A_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def phase_of(chain: Sequence[str], *, in_role: bool) -> str | None:
    """The phase of a task from the paths (``file:line``) of the task and of its parents, innermost first:
    the task file of the fleet.rollout deploy role it comes from (``drain``, ``switch``, ...), through
    imports and includes, so a hook's tasks belong to the step that ran the hook. Everything under
    ``recover.yml`` is ``recover``; the own tasks of the ``rollback`` entry point (``rollback.yml``, and
    of the deprecated rollback role) are ``rollback``; the deploy role's ``main.yml`` (and the rules it
    checks) is ``check``; the entry point ``settings`` (checks only, before any host is touched) is none.
    ``None`` for a task outside the roles; ``check`` for a role task without a task file (the argument
    validation)."""
    files = [match.groups() for match in map(_ROLE_FILE.search, chain) if match]
    if ("deploy", "settings") in files:
        return None  # the entry point that only checks the settings (the deploy playbook's preflight)
    if ("deploy", "recover") in files:
        return RECOVER
    if files:
        role, stem = files[0]
        if role == "rollback":
            return ROLLBACK
        return CHECK if stem in ("main", "rules") else stem
    return CHECK if in_role else None


def timestamp(seconds: float) -> str:
    """UTC ISO 8601 with milliseconds, e.g. ``2026-05-09T07:35:25.123Z``."""
    stamp = datetime.fromtimestamp(seconds, tz=UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


def file_name(run_id: str, target: str) -> str:
    """``<run id>-<target>.json`` with anything but letters, digits, ``.``, ``_`` and ``-`` replaced."""
    safe = _NOT_IN_A_NAME.sub("_", target).strip("._") or "all"
    return f"{run_id}-{safe[:80]}.json"


def new_run_id(now: float, pid: int) -> str:
    """Sortable and unique on one controller: ``20260509T073525Z-4242``."""
    return f"{datetime.fromtimestamp(now, tz=UTC):%Y%m%dT%H%M%SZ}-{pid}"


@dataclass
class Phase:
    """Consecutive tasks of one host from the same step. ``outcome`` is the worst status of its tasks."""

    name: str
    started_at: float
    ended_at: float
    outcome: str
    tasks: int = 1
    failed_task: str | None = None
    msg: str | None = None

    def add(self, task: str, status: str, at: float, msg: str | None) -> None:
        self.tasks += 1
        self.ended_at = at
        self.note(task, status, msg)

    def note(self, task: str, status: str, msg: str | None) -> None:
        if _SEVERITY.get(status, 0) > _SEVERITY.get(self.outcome, 0):
            self.outcome = status
        if status in (FAILED, UNREACHABLE):
            self.failed_task, self.msg = task, msg

    def to_dict(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "phase": self.name,
            "started_at": timestamp(self.started_at),
            "ended_at": timestamp(self.ended_at),
            "seconds": round(max(0.0, self.ended_at - self.started_at), 3),
            "outcome": self.outcome,
            "tasks": self.tasks,
        }
        if self.failed_task is not None:
            entry["failed_task"] = self.failed_task
        if self.msg is not None:
            entry["msg"] = self.msg
        return entry


@dataclass
class _InFlight:
    task: str
    phase: str
    since: float
    key: str


@dataclass
class HostRecord:
    phases: list[Phase] = field(default_factory=list)
    outcome: str = WAITING
    running: _InFlight | None = None
    msg: str | None = None
    # times the host was found back in rotation while held drained, and drained again (lb_member's held)
    redrains: list[dict[str, Any]] = field(default_factory=list)

    @property
    def touched(self) -> bool:
        """Whether any task of the roles ran here (or is running), staging aside."""
        outside = (PREFLIGHT, AFTER, STAGE)
        in_role = (p.name not in outside for p in self.phases)
        return any(in_role) or (self.running is not None and self.running.phase not in outside)

    @property
    def reverted(self) -> bool:
        """Whether the rollback entry point took the host back (the revert of a halted rollout)."""
        return any(phase.name == ROLLBACK for phase in self.phases)

    def to_dict(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"outcome": self.outcome}
        if self.msg is not None:
            entry["msg"] = self.msg
        if self.running is not None:
            entry["running"] = {
                "phase": self.running.phase,
                "task": self.running.task,
                "since": timestamp(self.running.since),
            }
        entry["phases"] = [phase.to_dict() for phase in self.phases]
        if self.redrains:
            entry["redrains"] = self.redrains
        return entry


@dataclass(frozen=True)
class HostTotals:
    """A host's counters from the play recap that decide its outcome."""

    failures: int = 0
    unreachable: int = 0


class Journal:
    """The state of one run: its settings, every host's phases, and the result."""

    FIELDS = ("playbook", "target", "version", "window", "canary", "strategy", "check_mode", "ansible_core")

    def __init__(self, run_id: str, started_at: float) -> None:
        self.run_id = run_id
        self.started_at = started_at
        self.finished_at: float | None = None
        self.result = RUNNING
        self.msg: str | None = None
        self.settings: dict[str, Any] = dict.fromkeys(self.FIELDS)
        self.plays: list[dict[str, Any]] = []
        self.hosts: dict[str, HostRecord] = {}
        self.summary: dict[str, list[str]] | None = None
        self.worse: list[str] = []
        self.max_failures: int | None = None
        self.lock_takeovers: list[dict[str, Any]] = []

    # ---- what the callback reports ------------------------------------------------------------------
    def set(self, **settings: Any) -> None:
        """Record settings of the run; ``None`` leaves a setting as it was."""
        for name, value in settings.items():
            if name not in self.settings:
                raise KeyError(name)
            if value is not None:
                self.settings[name] = plain(value)

    def play_started(self, name: str, strategy: str | None, hosts: Iterable[str], at: float) -> None:
        self.plays.append({"name": name, "strategy": strategy, "started_at": timestamp(at)})
        for host in hosts:
            self.host(host)

    def host(self, name: str) -> HostRecord:
        return self.hosts.setdefault(name, HostRecord())

    def task_started(self, host: str, task: str, phase: str | None, *, at: float, key: str = "") -> None:
        """A task was queued for a host; ``phase`` is None for a task outside the roles. ``key`` (the
        task's id) matches the start with the result (whose name may have been templated since)."""
        record = self._record(host, phase)
        if record is None:
            return
        record.running = _InFlight(task, phase or self._outside(record), at, key or task)
        if record.touched and record.outcome == WAITING:
            record.outcome = RUNNING

    def task_finished(
        self,
        host: str,
        task: str,
        phase: str | None,
        status: str,
        *,
        at: float,
        msg: str | None = None,
        key: str = "",
    ) -> None:
        """A task's result. Skipped tasks make no phase; consecutive tasks of one phase share an entry.
        Tasks outside the roles count only on the target hosts (those of the plays on the target)."""
        record = self._record(host, phase)
        if record is None:
            return
        running, record.running = record.running, None
        if status == SKIPPED or (phase == LEASE and status in (OK, CHANGED)):
            return
        name = phase or self._outside(record)
        started = running.since if running and running.key == (key or task) else at
        msg = short(msg) if status in (FAILED, UNREACHABLE) else None
        last = record.phases[-1] if record.phases else None
        if last is not None and last.name == name:
            last.add(task, status, at, msg)
        else:
            record.phases.append(Phase(name, started, at, OK if status == IGNORED else status))
            record.phases[-1].note(task, status, msg)
        if status in (FAILED, UNREACHABLE):
            record.outcome, record.msg = status, msg
        elif record.touched:
            record.outcome = RUNNING

    def decided(self, *, worse: Iterable[str] = (), max_failures: int | None = None) -> None:
        """What the playbook decided beyond the recap: release analysis's reasons, the failure budget."""
        self.worse, self.max_failures = [str(reason) for reason in worse], max_failures

    def lock_taken(self, takeover: str, previous_holder: Any, msg: Any, at: float) -> None:
        """A rollout lock taken from another run (expired, its holder gone, forced): from whom, and why."""
        entry = {"takeover": str(takeover), "previous_holder": plain(previous_holder), "msg": short(msg)}
        self.lock_takeovers.append({**entry, "at": timestamp(at)})

    def redrained(self, host: str, events: Iterable[Any]) -> None:
        """A drained host found back in rotation (a reload that lost the state, another tool) and drained
        again by the watcher its drain left: where and when, as lb_member reported it."""
        record = self._record(host, None)
        if record is not None:
            record.redrains.extend(plain(event) for event in events)

    def finish(self, totals: Mapping[str, HostTotals], at: float) -> None:
        """The play recap arrived: every host's outcome, the summary and the result (see _outcome)."""
        for record in self.hosts.values():
            record.running = None
        outcome = decide(
            self.hosts,
            failed=[name for name in self.hosts if totals.get(name, HostTotals()).failures],
            unreachable=[name for name in self.hosts if totals.get(name, HostTotals()).unreachable],
            started=[name for name, record in self.hosts.items() if record.touched],
            reverted=[name for name, record in self.hosts.items() if record.reverted],
            worse=self.worse,
            max_failures=self.max_failures,
        )
        for name, record in self.hosts.items():
            record.outcome = outcome.hosts[name]
            if record.outcome not in (FAILED, UNREACHABLE):
                record.msg = None
        self.summary = outcome.by_outcome()
        self.result = outcome.journal_result
        self.finished_at = at

    def interrupt(self, at: float, msg: str) -> None:
        """The run ended without its recap (a signal, or an error that stopped ansible-playbook)."""
        self.result, self.msg, self.finished_at = "interrupted", msg, at

    # ---- what is written ----------------------------------------------------------------------------
    def to_dict(self, now: float) -> dict[str, Any]:
        data: dict[str, Any] = {"journal_format": FORMAT_VERSION, "run_id": self.run_id}
        data.update(self.settings)
        data.update(
            result=self.result,
            started_at=timestamp(self.started_at),
            updated_at=timestamp(now),
            finished_at=None if self.finished_at is None else timestamp(self.finished_at),
        )
        if self.msg is not None:
            data["msg"] = self.msg
        if self.summary is not None:
            data["summary"] = self.summary
        if self.lock_takeovers:
            data["lock_takeovers"] = self.lock_takeovers
        data["plays"] = self.plays
        data["hosts"] = {name: record.to_dict() for name, record in self.hosts.items()}
        return data

    def _record(self, host: str, phase: str | None) -> HostRecord | None:
        if host in self.hosts:
            return self.hosts[host]
        return None if phase is None else self.host(host)

    @staticmethod
    def _outside(record: HostRecord) -> str:
        return AFTER if record.touched else PREFLIGHT
