# Private to this collection: not a public API, may change without notice.
"""What is installed under a release root and what is current, with the state file's memory of switches:
read once, changed in memory to predict what a task will do (check mode, diff), then compared."""

from __future__ import annotations

import os
import typing as t

from ansible_collections.fleet.rollout.plugins.module_utils._fsutil import iso_time, parse_time

HISTORY_KEPT = 50  # switches remembered; "previous" only ever needs the last few


def time_or_none(value: t.Any) -> float | None:
    """A recorded time, or None for a state file edited by hand (the directory's mtime stands in)."""
    try:
        return parse_time(value)
    except ValueError:
        return None


class ReleaseSnapshot:
    """What is installed and current, plus the state file's memory; changed in memory to predict."""

    def __init__(
        self,
        current: str | None,
        releases: dict[str, dict[str, t.Any]],
        history: list[dict[str, t.Any]],
        bad: dict[str, dict[str, t.Any]],
    ) -> None:
        self.current = current
        self.releases = releases  # version -> {"installed_at": epoch, "source": ..., "checksum": ...}
        self.history = history  # switches, oldest first: {"version", "at", "action", "from"}
        self.bad = bad  # version -> {"marked_at": iso, "reason": str}

    def copy(self) -> ReleaseSnapshot:
        return ReleaseSnapshot(
            self.current,
            {version: dict(info) for version, info in self.releases.items()},
            [dict(entry) for entry in self.history],
            {version: dict(mark) for version, mark in self.bad.items()},
        )

    def previous(self) -> str | None:
        """The release current before the current one became current, skipping removed and bad ones."""
        # The currents over time: what each switch replaced (also a release put there by hand or by
        # another tool, which the history never saw become current), then what it switched to.
        versions: list[t.Any] = []
        for entry in self.history:
            came_from = entry.get("from")
            if came_from is not None and (not versions or versions[-1] != came_from):
                versions.append(came_from)
            versions.append(entry.get("version"))
        if self.current in versions:
            versions = versions[: len(versions) - 1 - versions[::-1].index(self.current)]
        for version in reversed(versions):
            if version != self.current and version in self.releases and version not in self.bad:
                return str(version)
        return None

    def switch(self, version: str, action: str, now: float) -> None:
        self.history.append({"version": version, "at": iso_time(now), "action": action, "from": self.current})
        del self.history[:-HISTORY_KEPT]
        self.current = version

    def surplus(self, keep: int) -> list[str]:
        """Releases beyond the newest ``keep``, never the current or previous one."""
        protected = {self.current, self.previous()}
        return [version for version in self.oldest_first()[::-1][keep:] if version not in protected]

    def oldest_first(self) -> list[str]:
        return sorted(self.releases, key=lambda v: (self.releases[v]["installed_at"], v))

    def to_result(self, root: str) -> dict[str, t.Any]:
        previous = self.previous()
        releases = []
        for version in self.oldest_first():
            info = self.releases[version]
            releases.append(
                {
                    "version": version,
                    "path": os.path.join(root, "releases", version),
                    "installed_at": iso_time(info["installed_at"]),
                    "source": info.get("source"),
                    "checksum": info.get("checksum"),
                    "current": version == self.current,
                    "previous": version == previous,
                    "bad": version in self.bad,
                }
            )
        return {"current": self.current, "previous": previous, "releases": releases, "marked_bad": self.bad}

    def to_diff_text(self) -> str:
        lines = [f"current: {self.current}", f"previous: {self.previous()}", "releases:"]
        for version in self.oldest_first():
            lines.append(f"  - {version}{' (marked bad)' if version in self.bad else ''}")
        lines.extend(f"marked bad: {version}" for version in sorted(set(self.bad) - set(self.releases)))
        return "\n".join(lines) + "\n"
