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
    return True
