# Private to this collection: not a public API, may change without notice.
"""Release directories under one root: install from an artifact, switch ``current`` atomically, keep N,
roll back, remove, mark bad.

Layout::

    <root>/releases/<version>/     one directory per installed release, never half-written
    <root>/releases/<version>.bad  the version is marked bad (JSON: when and why); beside its directory
    <root>/current                 relative symlink to releases/<version>, replaced by rename
    <root>/.release-state.json     switch history and install times; replaced by rename

The filesystem says which releases exist and which is current; the state file says what the filesystem
cannot: the order of switches (so "previous" is the release that was current before, not a guess from
mtimes) and install times.

No AnsibleModule here: the download and the restart command's runner are injected callables, results
are plain dicts, and ``check_mode`` makes every method report what it would do without touching anything.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import secrets
import shutil
import tempfile
import time
import typing as t

from ansible_collections.fleet.rollout.plugins.module_utils._artifact import (
    ReleaseSource,
    UnpackLimit,
    check_links_inside,
    copy_tree_into,
    extract_tar,
    verify_checksum,
)
from ansible_collections.fleet.rollout.plugins.module_utils._errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    os_errors,
)
from ansible_collections.fleet.rollout.plugins.module_utils._fsutil import (
    fsync_dir,
    iso_time,
    write_json_atomically,
)
from ansible_collections.fleet.rollout.plugins.module_utils._release_snapshot import (
    ReleaseSnapshot,
    time_or_none,
)
from ansible_collections.fleet.rollout.plugins.module_utils._restart import (
    Restart,
    RunCommand,
    restart_after_switch,
)
from ansible_collections.fleet.rollout.plugins.module_utils._validate import BAD_SUFFIX, validate_version

__all__ = ["BAD_SUFFIX", "ReleaseManager", "validate_version"]

STATE_FILE = ".release-state.json"
STATE_FORMAT = 1

Download = t.Callable[[str, t.BinaryIO], None]  # write the body at a URL into a file, or raise


@dataclasses.dataclass
class _DeployPlan:
    after: ReleaseSnapshot
    install: bool
    switch: bool = False
    removed: list[str] = dataclasses.field(default_factory=list)
    warnings: list[str] = dataclasses.field(default_factory=list)

    @property
    def changed(self) -> bool:
        return self.install or self.switch or bool(self.removed)


@dataclasses.dataclass
class ReleaseManager:
    """The release directories under ``root``; every public method returns a plain result dict."""

    root: str
    check_mode: bool = False
    download: Download | None = None
    now: t.Callable[[], float] = time.time
    run_command: RunCommand | None = None
    # bytes an archive may unpack to; None: what the filesystem can take (see UnpackLimit.for_folder)
    max_unpacked_size: int | None = None

    def __post_init__(self) -> None:
        if self.max_unpacked_size is not None and self.max_unpacked_size < 1:
            raise InvalidInputError(
                f"max_unpacked_size must be at least 1 byte, got {self.max_unpacked_size}",
                max_unpacked_size=self.max_unpacked_size,
            )

    # ---- the four states ----

    def deploy(
        self,
        version: str,
        source: ReleaseSource,
        *,
        keep: int = 5,
        force: bool = False,
        make_current: bool = True,
        restart: Restart | None = None,
    ) -> dict[str, t.Any]:
        """Install ``version`` if missing, make it current, drop releases beyond ``keep``, then restart.

        With ``make_current=False`` (state ``staged``) it only installs and drops: a rollout stages the
        release while the host still serves, so the switch and the restart are all that happen while it
        is out of rotation.
        """
        validate_version(version)
        source.validate()
        if keep < 1:
            raise InvalidInputError(f"keep must be at least 1, got {keep}", keep=keep)
        with self._os_errors(f"deploying release {version}"):
            before = self._snapshot()
            self._refuse_bad(before, version, force)
            plan = self._plan_deploy(before, version, source, keep, make_current)
            after = plan.after
            if plan.changed and not self.check_mode:
                self._make_dirs()
                if plan.install:
                    self._install(version, source, after.releases[version]["installed_at"])
                if plan.switch:
                    self._switch_current(version)
                self._save_state(after)
                for old in plan.removed:
                    self._remove_dir(old)
                after = self._snapshot()
            result = self._result(before, after, plan.changed, removed=plan.removed)
        result["installed"] = version if plan.install else None
        result["warnings"] = plan.warnings
        restart = restart if make_current else None  # staging never restarts
        restart_after_switch(restart, plan.switch, result, self.check_mode, self.run_command)
        return result

    def _plan_deploy(
        self, before: ReleaseSnapshot, version: str, source: ReleaseSource, keep: int, make_current: bool
    ) -> _DeployPlan:
        """What a deploy changes, predicted on a copy of ``before``."""
        plan = _DeployPlan(after=before.copy(), install=version not in before.releases)
        if plan.install and source.src is not None and not os.path.exists(source.src):
            # In check mode the task that puts src there may not have run for real either.
            if not self.check_mode:
                raise NotFoundError(f"src {source.src} does not exist", src=source.src, version=version)
            plan.warnings.append(f"src {source.src} does not exist (yet); a real run needs it")
        if plan.install:
            plan.after.releases[version] = {
                "installed_at": self.now(),
                "source": source.describe(),
                "checksum": source.checksum,
            }
        plan.switch = make_current and before.current != version
        if plan.switch:
            plan.after.switch(version, "deploy", self.now())
        plan.removed = plan.after.surplus(keep)
        for old in plan.removed:
            del plan.after.releases[old]
        return plan

    def rollback(
        self, version: str | None = None, force: bool = False, restart: Restart | None = None
    ) -> dict[str, t.Any]:
        """Make ``version``, or else the previous release, current again. Already rolled back: no change."""
        if version is not None:
            validate_version(version)
        with self._os_errors("rolling back"):
            before = self._snapshot()
            target = version if version is not None else self._rollback_target(before)
            if target is not None and target not in before.releases:
                raise NotFoundError(
                    f"cannot roll back to {target}: it is not installed under {self._releases_dir()}",
                    version=target,
                    installed=sorted(before.releases),
                )
            after = before.copy()
            changed = target is not None and target != before.current
            if target is not None and changed:
                self._refuse_bad(before, target, force)
                after.switch(target, "rollback", self.now())
                if not self.check_mode:
                    self._switch_current(target)
                    self._save_state(after)
                    after = self._snapshot()
            result = self._result(before, after, changed)
        restart_after_switch(restart, changed, result, self.check_mode, self.run_command)
        return result

    def remove(self, version: str) -> dict[str, t.Any]:
        """Remove one release; never the current one."""
        validate_version(version)
        with self._os_errors(f"removing release {version}"):
            before = self._snapshot()
            if version == before.current:
                raise ConflictError(
                    f"release {version} is current under {self.root}; switch to another one first",
                    version=version,
                )
            after = before.copy()
            changed = after.releases.pop(version, None) is not None
            if changed and not self.check_mode:
                self._save_state(after)
                self._remove_dir(version)
                after = self._snapshot()
            return self._result(before, after, changed, removed=[version] if changed else [])

    def mark_bad(self, version: str, reason: str | None = None) -> dict[str, t.Any]:
        """Remember that ``version`` is bad: deploying it (or rolling back to it) then needs force."""
        validate_version(version)
        with self._os_errors(f"marking release {version} bad"):
            before = self._snapshot()
            after = before.copy()
            changed = version not in before.bad
            if changed:
                after.bad[version] = {"marked_at": iso_time(self.now()), "reason": reason or ""}
                if not self.check_mode:
                    self._make_dirs()
                    write_json_atomically(
                        os.path.join(self._releases_dir(), version + BAD_SUFFIX), after.bad[version]
                    )
                    after = self._snapshot()
            return self._result(before, after, changed)

    # ---- reading ----

    def _releases_dir(self) -> str:
        return os.path.join(self.root, "releases")

    def _state_path(self) -> str:
        return os.path.join(self.root, STATE_FILE)

    def _snapshot(self) -> ReleaseSnapshot:
        state = self._load_state()
        known = state.get("releases", {})
        releases = {}
        bad: dict[str, dict[str, t.Any]] = {}
        if os.path.isdir(self._releases_dir()):
            for entry in os.scandir(self._releases_dir()):
                # Dot-names are work in progress (.incoming-*, .removing-*), never releases.
                if entry.name.startswith("."):
                    continue
                if entry.name.endswith(BAD_SUFFIX) and entry.is_file(follow_symlinks=False):
                    bad[entry.name[: -len(BAD_SUFFIX)]] = self._read_mark(entry.path)
                if not entry.is_dir(follow_symlinks=False):
                    continue
                info = known.get(entry.name) if isinstance(known.get(entry.name), dict) else {}
                installed_at = time_or_none(info.get("installed_at"))
                releases[entry.name] = {
                    "installed_at": installed_at if installed_at is not None else entry.stat().st_mtime,
                    "source": info.get("source"),
                    "checksum": info.get("checksum"),
                }
        return ReleaseSnapshot(self._read_current(), releases, state["history"], bad)

    @staticmethod
    def _read_mark(path: str) -> dict[str, t.Any]:
        """A bad mark's record; a mark made by hand (any content) still marks the version bad."""
        try:
            with open(path, encoding="utf-8") as handle:
                mark = json.load(handle)
        except ValueError:
            mark = None
        return mark if isinstance(mark, dict) else {"marked_at": None, "reason": "marked by hand"}

    def _read_current(self) -> str | None:
        link = os.path.join(self.root, "current")
        if not os.path.lexists(link):
            return None
        if not os.path.islink(link):
            raise ConflictError(f"{link} exists but is not a symlink; move it away first", path=link)
        target = os.readlink(link)
        if os.path.isabs(target):
            target = os.path.relpath(target, self.root)
        folder, version = os.path.split(os.path.normpath(target))
        # A link somewhere else is not one of ours: no current release, and a deploy replaces the link.
        return version if folder == "releases" else None

    def _load_state(self) -> dict[str, t.Any]:
        path = self._state_path()
        try:
            with open(path, encoding="utf-8") as handle:
                state = json.load(handle)
        except FileNotFoundError:
            return {"history": [], "releases": {}}
        except ValueError as exc:
            raise ConflictError(f"{path} is not valid JSON ({exc}); fix or remove it", path=path) from exc
        shapes = {"history": list, "releases": dict}
        if not isinstance(state, dict) or any(
            not isinstance(state.get(k), kind) for k, kind in shapes.items()
        ):
            raise ConflictError(f"{path} is not a release state file; fix or remove it", path=path)
        state["history"] = [entry for entry in state["history"] if isinstance(entry, dict)]
        return state

    # ---- acting ----

    @contextlib.contextmanager
    def _os_errors(self, doing: str) -> t.Iterator[None]:
        """Turn an unexpected filesystem error into this collection's error, saying what was being done."""
        with os_errors(f"{doing} under {self.root}"):
            yield

    def _refuse_bad(self, snapshot: ReleaseSnapshot, version: str, force: bool) -> None:
        mark = snapshot.bad.get(version)
        if mark is not None and not force:
            reason = f": {mark.get('reason')}" if mark.get("reason") else ""
            raise ConflictError(
                f"release {version} was marked bad at {mark.get('marked_at')}{reason}; "
                "set force to use it anyway",
                version=version,
                marked_bad=mark,
            )

    def _rollback_target(self, snapshot: ReleaseSnapshot) -> str | None:
        """The previous release, or None when the last switch already was a rollback to the current one."""
        last = snapshot.history[-1] if snapshot.history else {}
        if last.get("action") == "rollback" and last.get("version") == snapshot.current:
            return None
        target = snapshot.previous()
        if target is None:
            raise NotFoundError(
                f"no previous release to roll back to under {self.root} (current: {snapshot.current})",
                current=snapshot.current,
                installed=sorted(snapshot.releases),
            )
        return target

    def _make_dirs(self) -> None:
        os.makedirs(self._releases_dir(), mode=0o755, exist_ok=True)

    def _install(self, version: str, source: ReleaseSource, installed_at: float) -> None:
        """Unpack or copy into a hidden directory beside the target, then rename it into place.

        The directory's mtime is set to ``installed_at`` first: a run killed between the rename and the
        state file's update leaves a release the state never recorded, whose install time is then read
        from that mtime. Left as unpacked, it would be the archive's (a ``.`` member, as ``tar -C build .``
        makes, or the copied directory's), an old time that puts the newest release first in line for
        ``keep`` to remove."""
        staging = tempfile.mkdtemp(prefix=f".incoming-{version}-", dir=self._releases_dir())
        try:
            os.chmod(staging, 0o755)
            if source.url is not None:
                self._install_from_url(source, staging)
            elif source.src is not None and os.path.isdir(source.src):
                copy_tree_into(source.src, staging)
                check_links_inside(os.path.realpath(staging))
            elif source.src is not None and os.path.isfile(source.src):
                verify_checksum(source.src, source.checksum, source.src)
                extract_tar(source.src, staging, self._unpack_limit())
            else:
                raise NotFoundError(f"src {source.src} is neither a file nor a directory", src=source.src)
            os.utime(staging, (installed_at, installed_at))
            os.rename(staging, os.path.join(self._releases_dir(), version))
        finally:
            if os.path.isdir(staging):
                shutil.rmtree(staging, ignore_errors=True)

    def _install_from_url(self, source: ReleaseSource, staging: str) -> None:
        if self.download is None:
            raise InvalidInputError("a download function is needed to install from a url")
        url = source.url or ""
        fd, artifact = tempfile.mkstemp(prefix=".download-", dir=self._releases_dir())
        try:
            with os.fdopen(fd, "wb") as handle:
                self.download(url, handle)
            verify_checksum(artifact, source.checksum, url)
            extract_tar(artifact, staging, self._unpack_limit())
        finally:
            os.unlink(artifact)

    def _unpack_limit(self) -> UnpackLimit:
        """Measured when unpacking starts: the download, if any, already takes its space."""
        return UnpackLimit.for_folder(self._releases_dir(), self.max_unpacked_size)

    def _switch_current(self, version: str) -> None:
        """A new symlink renamed over ``current``: there is never a moment without one."""
        link = os.path.join(self.root, "current")
        fresh = os.path.join(self.root, f".current-{secrets.token_hex(8)}")
        os.symlink(os.path.join("releases", version), fresh)
        try:
            os.replace(fresh, link)
        except OSError:
            os.unlink(fresh)
            raise
        fsync_dir(self.root)

    def _save_state(self, snapshot: ReleaseSnapshot) -> None:
        state = {
            "format": STATE_FORMAT,
            "history": snapshot.history,
            "releases": {
                version: {**info, "installed_at": iso_time(info["installed_at"])}
                for version, info in snapshot.releases.items()
            },
        }
        write_json_atomically(self._state_path(), state)

    def _remove_dir(self, version: str) -> None:
        """Rename out of sight first, so a half-deleted release is never listed."""
        doomed = os.path.join(self._releases_dir(), f".removing-{version}-{secrets.token_hex(4)}")
        os.rename(os.path.join(self._releases_dir(), version), doomed)
        shutil.rmtree(doomed)

    def _result(
        self,
        before: ReleaseSnapshot,
        after: ReleaseSnapshot,
        changed: bool,
        removed: list[str] | None = None,
    ) -> dict[str, t.Any]:
        result = after.to_result(self.root)
        result["changed"] = changed
        result["removed"] = removed or []
        result["diff"] = {
            "before": before.to_diff_text(),
            "after": after.to_diff_text(),
            "before_header": self.root,
            "after_header": self.root,
        }
        return result
