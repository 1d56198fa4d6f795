# Private to this collection: not a public API, may change without notice.
"""Whether a process runs on this host: the lock's holder, a reloaded HAProxy, a hold's watcher."""

from __future__ import annotations

import os


def process_runs(pid: int) -> bool:
    """Whether process ``pid`` runs on this host, as any user. What cannot be known (pids below 2, which
    name process groups or init; an error other than "no such process") counts as running."""
    if pid < 2:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it runs, as another user
        return True
    return not _zombie(pid)


def stat_fields(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name (field 3, the state, first); None
    without /proc or without that process. The name (field 2) may hold spaces and parentheses: the
    fields follow its last ")"."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            return stat.read().rpartition(")")[2].split()
    except OSError:
        return None


def _zombie(pid: int) -> bool:
    """Whether ``pid`` has ended but not been reaped (its parent, or an init that does not reap, holds
    its entry): it no longer runs. Only Linux's /proc tells; elsewhere, False."""
    fields = stat_fields(pid)
    return fields is not None and fields[:1] == ["Z"]
