# Private to this collection: not a public API, may change without notice.
"""What a rollout lock file holds: who holds the lock, since when and until when, and optionally the
controller process whose end frees it (see :class:`Holder`)."""

from __future__ import annotations

import dataclasses
import getpass
import json
import os
import secrets
import socket
import typing as t

from ansible_collections.fleet.rollout.plugins.module_utils._fsutil import iso_time, parse_time
from ansible_collections.fleet.rollout.plugins.module_utils._process import process_runs, stat_fields

RECORD_FORMAT = 1
BOOT_ID_PATH = "/proc/sys/kernel/random/boot_id"


@dataclasses.dataclass(frozen=True)
class Holder:
    """The process whose life a lock follows (the ansible-playbook process), and what tells it apart from
    a later process with the same pid: ``started`` is ``<boot id> <start time in clock ticks>`` from
    /proc, or None where /proc is absent (then the pid alone, which a reused pid can fool)."""

    pid: int
    started: str | None

    @classmethod
    def of(cls, pid: int) -> Holder:
        return cls(pid, process_started(pid))


def process_started(pid: int) -> str | None:
    """``<boot id> <start ticks>`` of ``pid`` (Linux /proc), None when /proc cannot tell."""
    try:
        with open(BOOT_ID_PATH, encoding="ascii") as handle:
            boot_id = handle.read().strip()
    except (OSError, ValueError):
        return None
    after_name = stat_fields(pid)  # from field 3 on
    if not boot_id or after_name is None or len(after_name) < 20:
        return None
    return f"{boot_id} {after_name[19]}"  # field 22, starttime


def holder_is_gone(pid: int, started: str | None) -> bool:
    """Whether the holder process no longer runs on this host; False whenever that is not certain."""
    if pid < 2:
        return False  # 0 and negative pids are process groups, 1 is init: never a holder
    if not process_runs(pid):
        return True
    if started is None:
        return False
    now_started = process_started(pid)
    # Another start time (or boot) under the same pid: the pid was reused, the holder is gone.
    return now_started is not None and now_started != started


def current_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError, ImportError):  # no login name and no passwd entry, e.g. in a container
        return str(os.getuid())


@dataclasses.dataclass(frozen=True)
class LockRecord:
    """Who holds a lock, since when and until when; what ``<name>.lock`` holds."""

    name: str
    run_id: str
    user: str
    host: str
    pid: int
    acquired_at: str
    expires_at: str
    ttl: int
    # Random per acquisition: two records never have the same bytes, so a rename that moved a newer
    # lock than the one judged is always noticed.
    token: str = dataclasses.field(default_factory=lambda: secrets.token_hex(8))
    # The ansible-playbook process whose end frees the lock (bind_to_controller), else None; records of
    # older versions have neither field.
    holder_pid: int | None = None
    holder_started: str | None = None
    # The controller (its host name) that ran the task: a lease's host is the target it is on.
    controller: str | None = None

    @classmethod
    def new(
        cls,
        name: str,
        run_id: str,
        ttl: int,
        now: float,
        holder: Holder | None = None,
        *,
        controller: str | None = None,
    ) -> LockRecord:
        return cls(
            name=name,
            run_id=run_id,
            user=current_user(),
            host=socket.gethostname(),
            pid=os.getpid(),
            # whole seconds: a record people read in messages; the TTL is whole seconds too
            acquired_at=iso_time(int(now)),
            expires_at=iso_time(int(now) + ttl),
            ttl=ttl,
            holder_pid=holder.pid if holder else None,
            holder_started=holder.started if holder else None,
            controller=controller,
        )

    @classmethod
    def from_json(cls, raw: bytes) -> LockRecord:
        """Parse a lock file; ValueError when it is not a record this module wrote."""
        data: t.Any = json.loads(raw.decode("utf-8"))
        if not isinstance(data, dict) or data.get("format") != RECORD_FORMAT:
            raise ValueError(f"not a format {RECORD_FORMAT} lock record")
        fields: dict[str, t.Any] = {field.name: data.get(field.name) for field in dataclasses.fields(cls)}
        for key in ("name", "run_id", "user", "host", "acquired_at", "expires_at", "token"):
            if not isinstance(fields[key], str) or not fields[key]:
                raise ValueError(f"{key} is missing or not a string")
        for key in ("pid", "ttl"):
            if not isinstance(fields[key], int) or isinstance(fields[key], bool):
                raise ValueError(f"{key} is missing or not an integer")
        holder_pid = fields["holder_pid"]
        if holder_pid is not None and (not isinstance(holder_pid, int) or isinstance(holder_pid, bool)):
            raise ValueError("holder_pid is not an integer")
        for key in ("holder_started", "controller"):
            if fields[key] is not None and not isinstance(fields[key], str):
                raise ValueError(f"{key} is not a string")
        parse_time(fields["acquired_at"])
        parse_time(fields["expires_at"])
        return cls(**fields)

    def to_json(self) -> bytes:
        data = dict(dataclasses.asdict(self), format=RECORD_FORMAT)
        return (json.dumps(data, indent=2, sort_keys=True) + "\n").encode("utf-8")

    def owner(self) -> dict[str, t.Any]:
        """The record as returned to the playbook (the token is bookkeeping of this module only)."""
        data = dataclasses.asdict(self)
        del data["token"]
        return data

    def expires(self) -> float:
        return parse_time(self.expires_at)

    def is_expired(self, now: float) -> bool:
        return now >= self.expires()

    def describe(self) -> str:
        pid = self.pid if self.holder_pid is None else self.holder_pid
        where = f"{self.user} on {self.host}, pid {pid}"
        if self.controller is not None and self.controller != self.host:
            where = f"from controller {self.controller}, {self.user} on {self.host}"
        return f"run {self.run_id} ({where})"

    def held_by(self, run_id: str, controller: str | None) -> bool:
        """Whether this is ``run_id``'s lock: the same id from the same controller (where both say)."""
        same_controller = controller is None or self.controller is None or self.controller == controller
        return self.run_id == run_id and same_controller

    def holder_gone(self, this_host: str, is_gone: t.Callable[[int, str | None], bool]) -> bool:
        """Whether the record's holder process is known to be gone: only a holder on this same host can
        be looked at; elsewhere the TTL stands."""
        if self.holder_pid is None or self.host != this_host:
            return False
        return is_gone(self.holder_pid, self.holder_started)

    def diff_text(self) -> str:
        return "".join(f"{key}: {value}\n" for key, value in self.owner().items())


@dataclasses.dataclass(frozen=True)
class Seen:
    """A lock file as read: its bytes, and the record when it is one (else why it is not)."""

    raw: bytes
    record: LockRecord | None
    problem: str | None = None

    def describe(self) -> str:
        return self.record.describe() if self.record else f"an unreadable lock file ({self.problem})"

    def holder(self) -> dict[str, t.Any]:
        return self.record.owner() if self.record else {"unreadable": self.problem}

    def diff_text(self) -> str:
        return self.record.diff_text() if self.record else f"unreadable: {self.problem}\n"
