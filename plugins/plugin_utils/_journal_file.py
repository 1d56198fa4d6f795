# Copyright (c) fleet.rollout developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
# Private to this collection: not a public API, may change without notice.
"""How the rollout journal is written: the file is rewritten atomically (a temporary file renamed over it),
at most every ``interval`` seconds, with a trailing write so that the last change is on disk within
``interval`` even when no further event comes. A process killed at any moment leaves either the previous
or the next complete journal, never a partial one.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from ansible_collections.fleet.rollout.plugins.module_utils._fsutil import write_json_atomically


def write_atomic(path: Path, data: Mapping[str, Any], *, durable: bool = False) -> None:
    """Replace ``path`` with ``data`` as JSON, whole (see write_json_atomically), in the order it was
    built. ``durable`` also syncs to disk (which only matters for a crash of the machine, not of the
    process), so a write per task stays cheap."""
    write_json_atomically(str(path), data, durable=durable, indent=1, sort_keys=False)


class Timer(Protocol):
    def cancel(self) -> None: ...


TimerFactory = Callable[[float, Callable[[], None]], Timer]


def start_timer(delay: float, action: Callable[[], None]) -> Timer:
    """A daemon thread that runs ``action`` after ``delay`` seconds unless cancelled."""
    timer = threading.Timer(delay, action)
    timer.daemon = True
    timer.start()
    return timer


class JournalFile:
    """Writes what ``render(now)`` returns to ``path``: at once when the last write is ``interval`` seconds
    old, else once that much time has passed (one pending timer at most), and for good on ``close``.

    ``lock`` guards the journal as well: the callback holds it while it changes the journal, and the
    timer's write takes it too. Errors go to ``on_error`` (an OSError: the journal is a record, it must
    never stop a rollout); the next change tries again."""

    def __init__(
        self,
        path: Path,
        render: Callable[[float], Mapping[str, Any]],
        *,
        interval: float = 0.2,
        on_error: Callable[[OSError], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        timer: TimerFactory = start_timer,
        lock: threading.RLock | None = None,
    ) -> None:
        self.path = path
        self.lock = lock if lock is not None else threading.RLock()
        self.writes = 0
        self._render = render
        self._interval = max(0.0, interval)
        self._on_error = on_error
        self._clock = clock
        self._wall_clock = wall_clock
        self._timer_factory = timer
        self._timer: Timer | None = None
        self._last_write = -math.inf
        self._dirty = False
        self._closed = False

    @property
    def pending(self) -> bool:
        """Whether a change waits for its (timed) write."""
        return self._dirty

    def changed(self) -> None:
        """The journal changed: write now if the last write is old enough, else make sure a write follows."""
        with self.lock:
            if self._closed:
                return
            self._dirty = True
            wait = self._last_write + self._interval - self._clock()
            if wait <= 0:
                self._write()
            elif self._timer is None:
                self._timer = self._timer_factory(wait, self._on_timer)

    def flush(self) -> None:
        """Write now if anything changed since the last write."""
        with self.lock:
            if self._dirty and not self._closed:
                self._write()

    def close(self) -> None:
        """Write the final state (synced to disk) and stop; later changes are not written."""
        with self.lock:
            if self._closed:
                return
            self._cancel_timer()
            self._write(durable=True)
            self._closed = True

    def _on_timer(self) -> None:
        with self.lock:
            self._timer = None
            self.flush()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _write(self, *, durable: bool = False) -> None:
        self._cancel_timer()
        self._dirty = False
        self._last_write = self._clock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(self.path, self._render(self._wall_clock()), durable=durable)
        except OSError as error:
            self._dirty = True
            if self._on_error is not None:
                self._on_error(error)
            return
        self.writes += 1
