# Private to this collection: not a public API, may change without notice.
"""Files that readers see whole or not at all, durable directories, and the one ISO 8601 time format of
the files this collection writes on a host (release state, bad marks, rollout locks)."""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import tempfile
import typing as t


def fsync_dir(path: str) -> None:
    """Make a rename or link inside ``path`` durable; best effort, as some filesystems refuse it."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_text_atomically(path: str, text: str, *, durable: bool = True, mode: int = 0o644) -> None:
    """Replace ``path`` with ``text``: written to a unique hidden file beside it, then renamed over it, so
    a reader (or a process killed mid-write, or a write from a signal handler that interrupts another)
    sees the old or the new file, whole. ``durable`` also syncs the file and its directory, which only
    matters when the machine itself crashes."""
    folder = os.path.dirname(path) or "."
    fd, fresh = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.chmod(fresh, mode)
        os.replace(fresh, path)
    finally:
        if os.path.exists(fresh):  # only when the write or the rename failed
            os.unlink(fresh)
    if durable:
        fsync_dir(folder)


def write_json_atomically(
    path: str,
    document: t.Mapping[str, t.Any],
    *,
    durable: bool = True,
    indent: int = 2,
    sort_keys: bool = True,
    mode: int = 0o644,
) -> None:
    """Replace ``path`` with ``document`` as JSON, atomically (write_text_atomically)."""
    text = json.dumps(document, indent=indent, sort_keys=sort_keys, default=str) + "\n"
    write_text_atomically(path, text, durable=durable, mode=mode)


def iso_time(timestamp: float) -> str:
    """UTC ISO 8601 with its offset; fractions of a second are kept (and omitted when there are none)."""
    # datetime.UTC is 3.11+; modules must still run on older Pythons of managed hosts.
    return datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc).isoformat()


def parse_time(value: t.Any) -> float:
    """The epoch seconds of an ISO 8601 time with its offset; ValueError for anything else."""
    if not isinstance(value, str):
        raise ValueError(f"not a time: {value!r}")
    parsed = datetime.datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError(f"time without a UTC offset: {value!r}")
    return parsed.timestamp()
