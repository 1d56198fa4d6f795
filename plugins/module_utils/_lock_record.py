# Private to this collection: not a public API, may change without notice.
"""What a rollout lock file holds: who holds the lock, since when and until when."""

from __future__ import annotations

import dataclasses
import getpass
import json
import os
import secrets
import socket
import typing as t

from ansible_collections.fleet.rollout.plugins.module_utils._fsutil import iso_time, parse_time

RECORD_FORMAT = 1


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

    @classmethod
    def new(cls, name: str, run_id: str, ttl: int, now: float) -> LockRecord:
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
        return f"run {self.run_id} ({self.user} on {self.host}, pid {self.pid})"

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
