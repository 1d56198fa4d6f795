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
import errno
import fcntl
import os
import secrets
import time
import typing as t

from ansible_collections.fleet.rollout.plugins.module_utils._errors import (
    ConflictError,
    InvalidInputError,
    TimeoutExpiredError,
    os_errors,
)
from ansible_collections.fleet.rollout.plugins.module_utils._fsutil import fsync_dir, parse_time
from ansible_collections.fleet.rollout.plugins.module_utils._lock_record import (
    Holder,
    LockRecord,
    Seen,
    holder_is_gone,
)
from ansible_collections.fleet.rollout.plugins.module_utils._poll import poll_until
from ansible_collections.fleet.rollout.plugins.module_utils._validate import validate_plain_name

NAME_MAX_LENGTH = 100
RUN_ID_MAX_LENGTH = 200
DEFAULT_DIRECTORY = "~/.ansible/fleet-rollout-locks"
DEFAULT_TTL = 3600
GUARD_POLL_INTERVAL = 0.01
GUARD_TIMEOUT = 30.0  # seconds to wait for another process's read-judge-act step (milliseconds in practice)
ATTEMPTS = 5  # rounds of read-judge-act when a lock changes under us (only possible without flock)
# Why a lock was taken from another run (the result's takeover, the journal's lock_takeovers).
EXPIRED = "expired"
HOLDER_GONE = "holder_gone"
FORCED = "forced"
HANDED_OVER = "handed_over"  # held by a run that this run took the rollout over from
# flock() is missing on some network filesystems; the atomic link/rename protocol still holds there.
FLOCK_UNSUPPORTED = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EINVAL, errno.ENOSYS)


def validate_name(name: t.Any) -> str:
    """Return ``name`` if it is safe as one file name, else raise InvalidInputError naming why."""
    return validate_plain_name("lock name", name, NAME_MAX_LENGTH, field="name")


def validate_run_id(run_id: t.Any) -> str:
    """Run ids go into lock records, messages and journal file names: the same alphabet as lock names."""
    return validate_plain_name("run_id", run_id, RUN_ID_MAX_LENGTH, field="run_id")


def human_duration(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"


@contextlib.contextmanager
def _removed_at_the_end(path: str) -> t.Iterator[None]:
    """The hidden file of one change (the new lock before its link, the old one after its rename) goes
    however the change ends."""
    try:
        yield
    finally:
        os.unlink(path)


class LockManager:
    """The lock called ``name`` in ``directory``; acquire() and release() return plain result dicts."""

    def __init__(
        self,
        directory: str,
        name: str,
        check_mode: bool = False,
        now: t.Callable[[], float] = time.time,
        guard_timeout: float = GUARD_TIMEOUT,
        *,
        holder: Holder | None = None,
        is_gone: t.Callable[[int, str | None], bool] = holder_is_gone,
        controller: str | None = None,
        handed_over_by: t.Sequence[str] = (),
    ) -> None:
        """``holder``: the process whose end frees a lock acquired here (None: only its TTL does);
        ``is_gone`` tells whether the holder process of a record of this host has gone; ``controller``:
        the host name of the controller the task runs for, recorded; ``handed_over_by``: runs whose locks
        this one takes over at once (this run took the rollout over from them)."""
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
        self.holder = holder
        self.is_gone = is_gone
        self.controller = controller
        self.handed_over_by = tuple(handed_over_by)
        self.path = os.path.join(directory, name + ".lock")

    # ---- the two states ----

    def acquire(self, run_id: str, ttl: int = DEFAULT_TTL, force: bool = False) -> dict[str, t.Any]:
        """Hold the lock for ``run_id``: create it, keep it, renew our expired one, or take it over.

        A live lock of ``run_id`` is kept as it is (no change; its expiry is not extended). An expired
        one of ``run_id`` is renewed with a fresh TTL. A lock of another run is taken over when it expired
        or when its holder process is gone from this host (see LockRecord.holder_gone); a live one raises
        ConflictError naming its holder, unless ``force`` breaks it.
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
                record = LockRecord.new(self.name, run_id, ttl, now, self.holder, controller=self.controller)
                if seen is None:
                    if self.check_mode or self._create(record):
                        return self._result(
                            None, record, f"acquired rollout lock {self.name!r} for run {run_id}"
                        )
                    continue
                if seen.record is not None and seen.record.held_by(run_id, self.controller):
                    kept = self._keep_own(seen, seen.record, record, now)
                    if kept is not None:
                        return kept
                    continue
                takeover, message = self._judge_other(seen, record, now, force)
                if self._replace(seen, record):
                    return self._result(seen, record, message, previous=seen, warn=True, takeover=takeover)
            raise self._unsettled()

    def _keep_own(
        self, seen: Seen, own: LockRecord, record: LockRecord, now: float
    ) -> dict[str, t.Any] | None:
        """Our own lock: kept while live, renewed once expired; None when it changed under us."""
        if not own.is_expired(now):
            message = f"rollout lock {self.name!r} is already held by this run ({own.run_id})"
            return self._result(seen, own, message, changed=False)
        message = f"renewed the expired rollout lock {self.name!r} of this run ({own.run_id})"
        return self._result(seen, record, message) if self._replace(seen, record) else None

    def _judge_other(self, seen: Seen, record: LockRecord, now: float, force: bool) -> tuple[str, str]:
        """Why the lock ``seen`` of another run may go to ``record`` now, and the warning saying so;
        ConflictError naming the holder when it may not."""
        held = seen.record
        if held is not None and held.is_expired(now):
            return EXPIRED, (
                f"took over rollout lock {self.name!r} from {held.describe()}: it expired at "
                f"{held.expires_at}, {human_duration(now - held.expires())} ago"
            )
        if held is not None and held.holder_gone(record.host, self.is_gone):
            return HOLDER_GONE, (
                f"took over rollout lock {self.name!r} from {held.describe()}{self._since(seen, now)}: its "
                f"ansible-playbook process {held.holder_pid} on {held.host} is gone (killed or crashed), so "
                f"the lock did not wait for its expiry at {held.expires_at}"
            )
        if held is not None and held.run_id in self.handed_over_by:
            return HANDED_OVER, (
                f"took over rollout lock {self.name!r} from {held.describe()}{self._since(seen, now)}: this "
                "run took the rollout over from that run"
            )
        if force:
            return FORCED, self._broke(seen, now)
        raise self._held_error(
            seen, now, f"run {record.run_id} cannot acquire it", "set force to break it if that run is gone"
        )

    def release(self, run_id: str, force: bool = False) -> dict[str, t.Any]:
        """Give the lock up: only its holder (``run_id``) may, unless ``force``; no lock is no change."""
        validate_run_id(run_id)
        with self._os_errors("releasing"), self._guard(create=False):
            for _attempt in range(ATTEMPTS):
                seen = self._read()
                if seen is None:
                    return self._result(None, None, f"rollout lock {self.name!r} is not held", changed=False)
                now = self.now()
                own = seen.record is not None and seen.record.held_by(run_id, self.controller)
                if not own and not force:
                    raise self._held_error(
                        seen,
                        now,
                        f"only its holder can release it, not run {run_id} (a lock of run {run_id} past its "
                        "TTL may have been taken over)",
                        "set force to break it",
                    )
                if own:
                    message = f"released rollout lock {self.name!r} of run {run_id}"
                else:
                    message = self._broke(seen, now)
                if self.check_mode or self._remove(seen, "released" if own else "broken"):
                    if own:
                        return self._result(seen, None, message)
                    return self._result(seen, None, message, previous=seen, warn=True, takeover=FORCED)
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

    def _held_error(self, seen: Seen, now: float, consequence: str, remedy: str) -> ConflictError:
        """Why this run cannot have the lock, and the way out, each said once."""
        if seen.record is None:
            # No holder to wait for: the way out is removing the file or breaking it.
            return ConflictError(
                f"rollout lock {self.name!r}: {seen.problem}; {consequence}; remove the file or "
                "set force to break it",
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
            f"{consequence}; {remedy}",
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
        takeover: str | None = None,
    ) -> dict[str, t.Any]:
        if self.check_mode and changed:
            message += " (check mode: nothing was changed)"
        result: dict[str, t.Any] = {
            "changed": changed,
            "msg": message,
            "lock": after.owner() if after else None,
            "previous_holder": previous.holder() if previous else None,
            "taken_over": previous is not None and after is not None,
            "takeover": takeover,
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
        def locked() -> bool:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            except OSError as exc:
                if exc.errno in FLOCK_UNSUPPORTED:
                    return True  # the atomic link/rename protocol alone
                raise
            return True

        if not poll_until(locked, time.monotonic() + self.guard_timeout, GUARD_POLL_INTERVAL):
            raise TimeoutExpiredError(
                f"rollout lock {self.name!r}: another process held {guard} for more than "
                f"{self.guard_timeout:g}s",
                name=self.name,
                path=self.path,
            )

    def _hidden(self, kind: str) -> str:
        return os.path.join(self.directory, f".{self.name}.{secrets.token_hex(8)}.{kind}")

    def _create(self, record: LockRecord) -> bool:
        """Make ``record`` the lock, complete at once; False when a lock exists (somebody was quicker)."""
        temporary = self._hidden("tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o644)
        with _removed_at_the_end(temporary):
            with os.fdopen(fd, "wb") as handle:
                handle.write(record.to_json())
                handle.flush()
                os.fsync(handle.fileno())
            try:
                os.link(temporary, self.path)
            except FileExistsError:
                return False
        self._sync_dir()
        return True

    def _remove(self, seen: Seen, why: str) -> bool:
        """Remove the lock if it still is ``seen``; False when it changed since it was read."""
        tombstone = self._hidden(why)
        try:
            os.rename(self.path, tombstone)
        except FileNotFoundError:
            return False
        with _removed_at_the_end(tombstone):
            with open(tombstone, "rb") as handle:
                moved = handle.read()
            if moved != seen.raw:
                # Not the lock that was judged: a newer one appeared since. Put it back, unless yet
                # another one was created meanwhile (then the moved one's holder has lost it, which only
                # a filesystem without flock() allows).
                with contextlib.suppress(FileExistsError):
                    os.link(tombstone, self.path)
                return False
        self._sync_dir()
        return True

    def _replace(self, seen: Seen, record: LockRecord) -> bool:
        """Take over (or renew, or break) the lock ``seen``: remove exactly it, then create ours."""
        if self.check_mode:
            return True
        return self._remove(seen, "taken-over") and self._create(record)

    def _sync_dir(self) -> None:
        fsync_dir(self.directory)

    @contextlib.contextmanager
    def _os_errors(self, doing: str) -> t.Iterator[None]:
        """Turn an unexpected filesystem error into this collection's error, saying what was being done."""
        what = f"{doing} rollout lock {self.name!r} in {self.directory}"
        with os_errors(what, name=self.name, path=self.path):
            yield
