# Private to this collection: not a public API, may change without notice.
"""Rollout locks: one lock file per target name in a directory, so two rollouts of a target never overlap.

Layout::

    <directory>/<name>.lock      the owner record (JSON); it appears complete or not at all, and goes
                                 away by rename, never by being rewritten in place
    <directory>/.<name>.guard    empty and permanent; flock()ed while a lock is read, judged and changed

Atomicity, in two layers:

- Every change of ``<name>.lock`` (create, take over, break, release) happens while this process holds
  an exclusive flock() on ``.<name>.guard``. Reading the lock, deciding and acting are therefore one
  step: of two rollouts racing for a free lock, or for the takeover of an expired one, the second only
  looks once the first is done, sees the first one's fresh lock and fails naming it. The kernel drops
  a flock when its process dies, so a killed run never leaves the guard held.
- The filesystem operations are atomic on their own as well, so no reader ever sees half a record and a
  filesystem without flock() (some network mounts) still has exactly one winner for a free lock: a lock
  is created by writing the record to a temporary file and hard-linking it to ``<name>.lock`` (link()
  fails when the name exists, like O_CREAT|O_EXCL, but the file is complete when it appears). A lock is
  removed by renaming it to a unique tombstone name, and the tombstone is then compared byte for byte
  with the record that was judged expired (every record carries a random token): a rename that moved a
  newer lock (the ABA case of two takers that read the same expired record) puts that lock back and
  looks again.

Nothing here touches AnsibleModule; the clock is injected so that tests can move time, and
``check_mode`` reads and predicts without creating the directory, the guard or anything else.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import errno
import fcntl
import getpass
import json
import os
import re
import secrets
import socket
import time
import typing as t

from ansible_collections.fleet.rollout.plugins.module_utils._errors import (
    ConflictError,
    InvalidInputError,
    TimeoutExpiredError,
    os_errors,
)
from ansible_collections.fleet.rollout.plugins.module_utils._validate import validate_file_name

RECORD_FORMAT = 1
NAME_MAX_LENGTH = 100
RUN_ID_MAX_LENGTH = 200
DEFAULT_DIRECTORY = "~/.ansible/fleet-rollout-locks"
DEFAULT_TTL = 3600
GUARD_TIMEOUT = 30.0  # seconds to wait for another process's read-judge-act step (milliseconds in practice)
ATTEMPTS = 5  # rounds of read-judge-act when a lock changes under us (only possible without flock)
NAME_PATTERN = re.compile(r"[A-Za-z0-9_.-]+")
# flock() is missing on some network filesystems; the atomic link/rename protocol still holds there.
FLOCK_UNSUPPORTED = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EINVAL, errno.ENOSYS)


def validate_name(name: t.Any) -> str:
    """Return ``name`` if it is safe as one file name, else raise InvalidInputError naming why."""
    return validate_file_name(
        "lock name",
        name,
        NAME_MAX_LENGTH,
        allowed=NAME_PATTERN,
        hint="; only ASCII letters, digits, '-', '_' and '.' are allowed, not as the first character '.'",
        field="name",
    )


def validate_run_id(run_id: t.Any) -> str:
    if not isinstance(run_id, str) or not run_id.strip():
        raise InvalidInputError(f"run_id must be a non-empty string, got {run_id!r}", run_id=run_id)
    if any(ord(char) < 32 or ord(char) == 127 for char in run_id) or len(run_id) > RUN_ID_MAX_LENGTH:
        raise InvalidInputError(
            f"run_id {run_id!r} must be at most {RUN_ID_MAX_LENGTH} characters without control characters",
            run_id=run_id,
        )
    return run_id


def iso_time(timestamp: float) -> str:
    # datetime.UTC is 3.11+; modules must still run on older Pythons of managed hosts.
    return datetime.datetime.fromtimestamp(int(timestamp), datetime.timezone.utc).isoformat()


def parse_time(value: t.Any) -> float:
    """The epoch seconds of an ISO 8601 time with its offset; ValueError for anything else."""
    if not isinstance(value, str):
        raise ValueError(f"not a time: {value!r}")
    parsed = datetime.datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError(f"time without a UTC offset: {value!r}")
    return parsed.timestamp()


def human_duration(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"


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
            acquired_at=iso_time(now),
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


class LockManager:
    """The lock called ``name`` in ``directory``; acquire() and release() return plain result dicts."""

    def __init__(
        self,
        directory: str,
        name: str,
        check_mode: bool = False,
        now: t.Callable[[], float] = time.time,
        guard_timeout: float = GUARD_TIMEOUT,
    ) -> None:
        directory = os.path.expanduser(directory)
        if not os.path.isabs(directory):
            # A module and the controller-side action run in different working directories.
            raise InvalidInputError(
                f"directory must be an absolute path, got {directory!r}", directory=directory
            )
        self.directory = directory
        self.name = validate_name(name)
        self.check_mode = check_mode
        self.now = now
        self.guard_timeout = guard_timeout
        self.path = os.path.join(directory, name + ".lock")

    # ---- the two states ----

    def acquire(self, run_id: str, ttl: int = DEFAULT_TTL, force: bool = False) -> dict[str, t.Any]:
        """Hold the lock for ``run_id``: create it, keep it, renew our expired one, or take it over.

        A live lock of ``run_id`` is kept as it is (no change; its expiry is not extended). An expired
        one of ``run_id`` is renewed with a fresh TTL. An expired lock of another run is taken over; a
        live one raises ConflictError naming its holder, unless ``force`` breaks it.
        """
        validate_run_id(run_id)
        if isinstance(ttl, bool) or not isinstance(ttl, int) or ttl < 1:
            raise InvalidInputError(
                f"ttl must be a whole number of seconds of at least 1, got {ttl!r}", ttl=ttl
            )
        with self._os_errors("acquiring"), self._guard(create=True):
            for _attempt in range(ATTEMPTS):
                seen = self._read()
                now = self.now()
                record = LockRecord.new(self.name, run_id, ttl, now)
                if seen is None:
                    if self.check_mode or self._create(record):
                        return self._result(
                            None, record, f"acquired rollout lock {self.name!r} for run {run_id}"
                        )
                    continue
                if seen.record is not None and seen.record.run_id == run_id:
                    if not seen.record.is_expired(now):
                        message = f"rollout lock {self.name!r} is already held by this run ({run_id})"
                        return self._result(seen, seen.record, message, changed=False)
                    message = f"renewed the expired rollout lock {self.name!r} of this run ({run_id})"
                    if self._replace(seen, record):
                        return self._result(seen, record, message)
                    continue
                stale = seen.record if seen.record is not None and seen.record.is_expired(now) else None
                if stale is None and not force:
                    raise self._held_error(
                        seen,
                        now,
                        f"run {run_id} cannot acquire it; set force to break it if that run is gone",
                    )
                if stale is not None:
                    message = (
                        f"took over rollout lock {self.name!r} from {stale.describe()}: it expired at "
                        f"{stale.expires_at}, {human_duration(now - stale.expires())} ago"
                    )
                else:
                    message = self._broke(seen, now)
                if self._replace(seen, record):
                    return self._result(seen, record, message, previous=seen, warn=True)
            raise self._unsettled()

    def release(self, run_id: str, force: bool = False) -> dict[str, t.Any]:
        """Give the lock up: only its holder (``run_id``) may, unless ``force``; no lock is no change."""
        validate_run_id(run_id)
        with self._os_errors("releasing"), self._guard(create=False):
            for _attempt in range(ATTEMPTS):
                seen = self._read()
                if seen is None:
                    return self._result(None, None, f"rollout lock {self.name!r} is not held", changed=False)
                now = self.now()
                own = seen.record is not None and seen.record.run_id == run_id
                if not own and not force:
                    raise self._held_error(
                        seen,
                        now,
                        f"only its holder can release it, not run {run_id} (a lock of run {run_id} past its "
                        "TTL may have been taken over); set force to break it",
                    )
                if own:
                    message = f"released rollout lock {self.name!r} of run {run_id}"
                else:
                    message = self._broke(seen, now)
                if self.check_mode or self._remove(seen, "released" if own else "broken"):
                    previous = None if own else seen
                    return self._result(seen, None, message, previous=previous, warn=not own)
            raise self._unsettled()

    # ---- reading and judging ----

    def _read(self) -> Seen | None:
        try:
            with open(self.path, "rb") as handle:
                raw = handle.read()
        except FileNotFoundError:
            return None
        try:
            return Seen(raw, LockRecord.from_json(raw))
        except (ValueError, TypeError) as exc:  # json.JSONDecodeError and UnicodeDecodeError are ValueErrors
            return Seen(raw, None, f"{self.path} is not a lock record of fleet.rollout.rollout_lock: {exc}")

    def _since(self, seen: Seen, now: float) -> str:
        if seen.record is None:
            return ""
        ago = human_duration(now - parse_time(seen.record.acquired_at))
        return f" since {seen.record.acquired_at} ({ago} ago)"

    def _broke(self, seen: Seen, now: float) -> str:
        return (
            f"broke rollout lock {self.name!r} held by {seen.describe()}{self._since(seen, now)}, with force"
        )

    def _held_error(self, seen: Seen, now: float, consequence: str) -> ConflictError:
        if seen.record is None:
            return ConflictError(
                f"rollout lock {self.name!r}: {seen.problem}; {consequence}. Remove the file or set force",
                name=self.name,
                path=self.path,
                holder=seen.holder(),
            )
        record = seen.record
        if record.is_expired(now):
            expiry = f"it expired at {record.expires_at}"
        else:
            expiry = f"it expires at {record.expires_at}, in {human_duration(record.expires() - now)}"
        return ConflictError(
            f"rollout lock {self.name!r} is held by {record.describe()}{self._since(seen, now)}; {expiry}; "
            f"{consequence}",
            name=self.name,
            path=self.path,
            holder=record.owner(),
        )

    def _unsettled(self) -> ConflictError:
        return ConflictError(
            f"rollout lock {self.name!r} changed under this run {ATTEMPTS} times in a row ({self.path}); "
            "another process is changing it without the guard",
            name=self.name,
            path=self.path,
        )

    def _result(
        self,
        before: Seen | None,
        after: LockRecord | None,
        message: str,
        *,
        changed: bool = True,
        previous: Seen | None = None,
        warn: bool = False,
    ) -> dict[str, t.Any]:
        if self.check_mode and changed:
            message += " (check mode: nothing was changed)"
        result: dict[str, t.Any] = {
            "changed": changed,
            "msg": message,
            "lock": after.owner() if after else None,
            "previous_holder": previous.holder() if previous else None,
            "taken_over": previous is not None and after is not None,
            "path": self.path,
            "diff": {
                "before": before.diff_text() if before else "",
                "after": after.diff_text() if after else "",
                "before_header": self.path,
                "after_header": self.path,
            },
        }
        if warn:
            result["warnings"] = [message]
        return result

    # ---- changing (never in check mode) ----

    @contextlib.contextmanager
    def _guard(self, create: bool) -> t.Iterator[None]:
        """Hold the exclusive flock on ``.<name>.guard`` (none in check mode: it only reads)."""
        if self.check_mode:
            yield
            return
        if create:
            os.makedirs(self.directory, mode=0o755, exist_ok=True)
        elif not os.path.isdir(self.directory):
            yield  # no directory, no lock: nothing to guard
            return
        guard = os.path.join(self.directory, f".{self.name}.guard")
        try:
            fd = os.open(guard, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        except PermissionError:  # a shared directory and another user's guard: a shared-read open flocks too
            fd = os.open(guard, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        try:
            self._flock(fd, guard)
            yield
        finally:
            os.close(fd)  # and with it the flock

    def _flock(self, fd: int, guard: str) -> None:
        deadline = time.monotonic() + self.guard_timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise TimeoutExpiredError(
                        f"rollout lock {self.name!r}: another process held {guard} for more than "
                        f"{self.guard_timeout:g}s",
                        name=self.name,
                        path=self.path,
                    ) from None
                time.sleep(0.01)
            except OSError as exc:
                if exc.errno in FLOCK_UNSUPPORTED:
                    return  # the atomic link/rename protocol alone
                raise

    def _hidden(self, kind: str) -> str:
        return os.path.join(self.directory, f".{self.name}.{secrets.token_hex(8)}.{kind}")

    def _create(self, record: LockRecord) -> bool:
        """Make ``record`` the lock, complete at once; False when a lock exists (somebody was quicker)."""
        temporary = self._hidden("tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o644)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(record.to_json())
                handle.flush()
                os.fsync(handle.fileno())
            try:
                os.link(temporary, self.path)
            except FileExistsError:
                return False
        finally:
            os.unlink(temporary)
        self._sync_dir()
        return True

    def _remove(self, seen: Seen, why: str) -> bool:
        """Remove the lock if it still is ``seen``; False when it changed since it was read."""
        tombstone = self._hidden(why)
        try:
            os.rename(self.path, tombstone)
        except FileNotFoundError:
            return False
        try:
            with open(tombstone, "rb") as handle:
                moved = handle.read()
            if moved != seen.raw:
                # Not the lock that was judged: a newer one appeared since. Put it back, unless yet
                # another one was created meanwhile (then the moved one's holder has lost it, which only
                # a filesystem without flock() allows).
                with contextlib.suppress(FileExistsError):
                    os.link(tombstone, self.path)
                return False
        finally:
            os.unlink(tombstone)
        self._sync_dir()
        return True

    def _replace(self, seen: Seen, record: LockRecord) -> bool:
        """Take over (or renew, or break) the lock ``seen``: remove exactly it, then create ours."""
        if self.check_mode:
            return True
        return self._remove(seen, "taken-over") and self._create(record)

    def _sync_dir(self) -> None:
        with contextlib.suppress(OSError):  # best effort: some filesystems cannot fsync a directory
            fd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    @contextlib.contextmanager
    def _os_errors(self, doing: str) -> t.Iterator[None]:
        """Turn an unexpected filesystem error into this collection's error, saying what was being done."""
        what = f"{doing} rollout lock {self.name!r} in {self.directory}"
        with os_errors(what, name=self.name, path=self.path):
            yield


# The module's interface, here so that the controller-side action plugin validates and runs the same.
ARGUMENT_SPEC: dict[str, dict[str, t.Any]] = dict(
    name=dict(type="str", required=True),
    state=dict(type="str", default="acquired", choices=["acquired", "released"]),
    run_id=dict(type="str", required=True),
    ttl=dict(type="int", default=DEFAULT_TTL),
    force=dict(type="bool", default=False),
    directory=dict(type="path", default=DEFAULT_DIRECTORY),
)
SPEC_CONSTRAINTS: dict[str, t.Any] = {}


def run_lock(params: dict[str, t.Any], check_mode: bool = False, diff: bool = False) -> dict[str, t.Any]:
    """Bring the lock the validated params name to their state."""
    manager = LockManager(params["directory"], params["name"], check_mode=check_mode)
    if params["state"] == "released":
        result = manager.release(params["run_id"], force=params["force"])
    else:
        result = manager.acquire(params["run_id"], ttl=params["ttl"], force=params["force"])
    if not diff:
        result.pop("diff", None)
    return result
