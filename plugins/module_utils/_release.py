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
import datetime
import hashlib
import http.client
import json
import os
import secrets
import shlex
import shutil
import tarfile
import tempfile
import time
import typing as t
import urllib.error
import zlib

from ansible.module_utils.urls import ConnectionError as UrlConnectionError
from ansible.module_utils.urls import open_url
from ansible_collections.fleet.rollout.plugins.module_utils._errors import (
    CommandFailedError,
    ConflictError,
    ConnectionFailedError,
    InvalidInputError,
    NotFoundError,
    os_errors,
)
from ansible_collections.fleet.rollout.plugins.module_utils._validate import validate_file_name

STATE_FILE = ".release-state.json"
BAD_SUFFIX = ".bad"  # releases/<version>.bad, beside the release directory: the version is marked bad
STATE_FORMAT = 1
HISTORY_KEPT = 50  # switches remembered; "previous" only ever needs the last few
CHECKSUM_ALGORITHMS = ("sha256", "sha512")
VERSION_MAX_LENGTH = 128

Download = t.Callable[[str, t.BinaryIO], None]  # write the body at a URL into a file, or raise
RunCommand = t.Callable[[t.List[str]], t.Tuple[int, str, str]]  # argv, no shell -> rc, stdout, stderr


def validate_version(version: t.Any) -> str:
    """Return ``version`` if it is safe as one directory name, else raise InvalidInputError naming why."""
    # A version ending in .bad would be taken for the bad mark of another version beside it.
    return validate_file_name(
        "release version",
        version,
        VERSION_MAX_LENGTH,
        forbidden="/\\;",
        forbidden_suffixes=(BAD_SUFFIX,),
        field="version",
    )


def parse_checksum(checksum: str) -> tuple[str, str]:
    """``sha256:<hex>`` (or sha512) into (algorithm, lower-case hex digest)."""
    algorithm, _sep, digest = checksum.partition(":")
    algorithm = algorithm.lower()
    digest = digest.strip().lower()
    size = hashlib.new(algorithm).digest_size * 2 if algorithm in CHECKSUM_ALGORITHMS else 0
    if not size or len(digest) != size or any(c not in "0123456789abcdef" for c in digest):
        raise InvalidInputError(
            f"checksum must be sha256:<64 hex digits> or sha512:<128 hex digits>, got {checksum!r}",
            checksum=checksum,
        )
    return algorithm, digest


def file_checksum(path: str, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1024 * 1024), b""):
            digest.update(block)
    return digest.hexdigest()


def iso_time(timestamp: float) -> str:
    # datetime.UTC is 3.11+; modules must still run on older Pythons of managed hosts.
    return datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc).isoformat()


def parse_time(value: t.Any) -> float | None:
    try:
        return datetime.datetime.fromisoformat(value).timestamp() if isinstance(value, str) else None
    except ValueError:
        return None


def is_inside(path: str, root: str) -> bool:
    """Whether the real ``path`` is ``root`` or below it (both already resolved with realpath)."""
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


class OpenUrlDownload:
    """Download on ansible.module_utils.urls.open_url, which works on the managed host and the controller."""

    def __init__(self, validate_certs: bool = True, timeout: float = 30) -> None:
        self.validate_certs = validate_certs
        self.timeout = timeout

    def __call__(self, url: str, out: t.BinaryIO) -> None:
        try:
            response = open_url(url, validate_certs=self.validate_certs, timeout=self.timeout)
            try:
                shutil.copyfileobj(response, out)
            finally:
                response.close()
        except urllib.error.HTTPError as exc:
            raise ConnectionFailedError(
                f"download of {url} failed: HTTP {exc.code} {exc.reason}", url=url
            ) from exc
        except urllib.error.URLError as exc:
            raise ConnectionFailedError(f"download of {url} failed: {exc.reason}", url=url) from exc
        except (OSError, http.client.HTTPException, UrlConnectionError) as exc:
            raise ConnectionFailedError(f"download of {url} failed: {exc}", url=url) from exc


@dataclasses.dataclass(frozen=True)
class Restart:
    """The command that restarts the service once ``current`` moved (``always``: even when it did not)."""

    argv: tuple[str, ...]
    always: bool = False

    @classmethod
    def parse(cls, command: t.Any, always: bool = False) -> Restart | None:
        """A command line (split like a shell would, but run without one) or an argv list; None for none."""
        if command is None:
            return None
        if isinstance(command, str):
            try:
                argv = shlex.split(command)
            except ValueError as exc:
                raise InvalidInputError(f"restart_command {command!r} cannot be split: {exc}") from exc
        elif isinstance(command, list) and all(isinstance(arg, str) for arg in command):
            argv = list(command)
        else:
            raise InvalidInputError(f"restart_command must be a string or a list of strings, got {command!r}")
        if not argv or not argv[0]:
            raise InvalidInputError(f"restart_command must name a program, got {command!r}")
        return cls(tuple(argv), always)


@dataclasses.dataclass(frozen=True)
class ReleaseSource:
    """Where a release comes from: ``src`` (a tar archive or a directory on this host) or ``url``."""

    src: str | None = None
    url: str | None = None
    checksum: str | None = None

    def describe(self) -> str:
        return self.url or self.src or ""

    def validate(self) -> None:
        if (self.src is None) == (self.url is None):
            raise InvalidInputError("exactly one of src and url is required to install a release")
        if self.url is not None and self.checksum is None:
            raise InvalidInputError("url needs checksum, verified before unpacking", url=self.url)
        if self.checksum is not None:
            parse_checksum(self.checksum)


# ---- safe unpacking ----


def check_member(member: tarfile.TarInfo, dest: str) -> None:
    """Refuse a tar member that would land, or point, outside ``dest`` (realpath'ed)."""
    name = member.name

    def refuse(why: str) -> InvalidInputError:
        return InvalidInputError(f"refusing archive member {name!r}: {why}", member=name)

    if os.path.isabs(name):
        raise refuse("absolute path")
    if ".." in name.split("/"):
        raise refuse("'..' in its path")
    if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
        raise refuse("device, fifo or other special file")
    target = os.path.join(dest, name)
    # realpath sees links unpacked by earlier members: a path through one of them must stay inside too.
    if not is_inside(os.path.realpath(os.path.dirname(target)), dest) or (
        not member.issym() and not is_inside(os.path.realpath(target), dest)
    ):
        raise refuse("its path leads outside the release directory through a symlink")
    if member.issym() or member.islnk():
        link = member.linkname
        if os.path.isabs(link):
            raise refuse(f"link to the absolute path {link!r}")
        base = os.path.dirname(target) if member.issym() else dest  # hard links name archive paths
        if not is_inside(os.path.realpath(os.path.join(base, link)), dest):
            raise refuse(f"link to {link!r} escapes the release directory")


def check_links_inside(dest: str) -> None:
    """After unpacking or copying: every symlink must still resolve inside ``dest``.

    A link checked when it was made can be redirected by a link made later in its path.
    """
    for folder, dirs, files in os.walk(dest):
        for name in dirs + files:
            path = os.path.join(folder, name)
            if os.path.islink(path) and not is_inside(os.path.realpath(path), dest):
                relative = os.path.relpath(path, dest)
                raise InvalidInputError(
                    f"refusing {relative!r}: symlink to {os.readlink(path)!r} escapes the release directory",
                    member=relative,
                )


def copy_tree_into(src: str, dest: str) -> None:
    """Copy the directory ``src`` into the existing empty directory ``dest``, symlinks as symlinks.

    What ``shutil.copytree(src, dest, symlinks=True, dirs_exist_ok=True)`` does, which is Python 3.8+:
    module code also runs on 3.7 targets.
    """
    for name in os.listdir(src):
        source, target = os.path.join(src, name), os.path.join(dest, name)
        if os.path.isdir(source) and not os.path.islink(source):
            shutil.copytree(source, target, symlinks=True)
        else:
            shutil.copy2(source, target, follow_symlinks=False)
    shutil.copystat(src, dest)


def extract_tar(archive: str, dest: str) -> None:
    """Unpack a (compressed) tar into the existing empty directory ``dest``, member by member, checked."""
    dest = os.path.realpath(dest)
    # Where Python has extraction filters, "data" is a second line of defence behind check_member.
    filter_arg: dict[str, t.Any] = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
    directories = []
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                check_member(member, dest)
                # Files belong to whoever deploys, and never carry setuid/setgid or group/other write.
                member.mode &= ~0o7022
                member.uid, member.gid = os.geteuid(), os.getegid()
                member.uname = member.gname = ""
                # A read-only directory gets its mode last, or the files inside it could not be written.
                tar.extract(member, dest, set_attrs=not member.isdir(), **filter_arg)
                if member.isdir():
                    directories.append(member)
    except (tarfile.TarError, EOFError, zlib.error) as exc:
        raise InvalidInputError(f"{archive} is not a readable tar archive: {exc}", src=archive) from exc
    for member in sorted(directories, key=lambda m: m.name, reverse=True):
        path = os.path.join(dest, member.name)
        os.chmod(path, member.mode)
        os.utime(path, (member.mtime, member.mtime))
    check_links_inside(dest)


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


class ReleaseManager:
    """The release directories under ``root``; every public method returns a plain result dict."""

    def __init__(
        self,
        root: str,
        check_mode: bool = False,
        download: Download | None = None,
        now: t.Callable[[], float] = time.time,
        run_command: RunCommand | None = None,
    ) -> None:
        self.root = root
        self.check_mode = check_mode
        self.download = download
        self.now = now
        self.run_command = run_command

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
            after = before.copy()
            warnings = []
            install = version not in before.releases
            if install and source.src is not None and not os.path.exists(source.src):
                # In check mode the task that puts src there may not have run for real either.
                if not self.check_mode:
                    raise NotFoundError(f"src {source.src} does not exist", src=source.src, version=version)
                warnings.append(f"src {source.src} does not exist (yet); a real run needs it")
            if install:
                after.releases[version] = {
                    "installed_at": self.now(),
                    "source": source.describe(),
                    "checksum": source.checksum,
                }
            switch = make_current and before.current != version
            if switch:
                after.switch(version, "deploy", self.now())
            removed = after.surplus(keep)
            for old in removed:
                del after.releases[old]
            changed = install or switch or bool(removed)
            if changed and not self.check_mode:
                self._make_dirs()
                if install:
                    self._install(version, source, after.releases[version]["installed_at"])
                if switch:
                    self._switch_current(version)
                self._save_state(after)
                for old in removed:
                    self._remove_dir(old)
                after = self._snapshot()
            result = self._result(before, after, changed, removed=removed)
        result["installed"] = version if install else None
        result["warnings"] = warnings
        self._restart(restart if make_current else None, switch, result)
        return result

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
        self._restart(restart, changed, result)
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
                    self._write_atomically(
                        os.path.join(self._releases_dir(), version + BAD_SUFFIX), after.bad[version]
                    )
                    after = self._snapshot()
            return self._result(before, after, changed)

    def _restart(self, restart: Restart | None, switched: bool, result: dict[str, t.Any]) -> None:
        """Run the restart command once ``current`` is in place; its failure fails the task, current stays."""
        result["restarted"] = False
        if restart is None or not (switched or restart.always):
            return
        result["restarted"] = result["changed"] = True
        if self.check_mode:
            return
        if self.run_command is None:
            raise InvalidInputError("a restart command was given but nothing can run it here")
        rc, out, err = self.run_command(list(restart.argv))
        result["restart"] = {"cmd": list(restart.argv), "rc": rc, "stdout": out, "stderr": err}
        if rc != 0:
            raise CommandFailedError(
                f"the restart command {' '.join(restart.argv)!r} exited {rc} with {result['current']} "
                f"current: {(err or out).strip()[-300:]}",
                changed=True,  # current moved (or was restarted): a rescue must know to switch back
                current=result["current"],
                **result["restart"],
            )

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
                installed_at = parse_time(info.get("installed_at"))
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
                self._verify(source.src, source.checksum, source.src)
                extract_tar(source.src, staging)
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
            self._verify(artifact, source.checksum, url)
            extract_tar(artifact, staging)
        finally:
            os.unlink(artifact)

    @staticmethod
    def _verify(path: str, checksum: str | None, origin: str) -> None:
        if checksum is None:
            return
        algorithm, expected = parse_checksum(checksum)
        actual = file_checksum(path, algorithm)
        if actual != expected:
            raise InvalidInputError(
                f"checksum mismatch for {origin}: expected {algorithm}:{expected}, got {algorithm}:{actual}",
                checksum=checksum,
                actual=f"{algorithm}:{actual}",
            )

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
        self._sync_dir(self.root)

    def _save_state(self, snapshot: ReleaseSnapshot) -> None:
        state = {
            "format": STATE_FORMAT,
            "history": snapshot.history,
            "releases": {
                version: {**info, "installed_at": iso_time(info["installed_at"])}
                for version, info in snapshot.releases.items()
            },
        }
        self._write_atomically(self._state_path(), state)

    def _write_atomically(self, path: str, document: dict[str, t.Any]) -> None:
        """JSON into a hidden file beside ``path``, renamed over it: readers see the old or the new one."""
        folder = os.path.dirname(path)
        fd, fresh = tempfile.mkstemp(prefix=".write-", suffix=".tmp", dir=folder)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(document, handle, indent=2, sort_keys=True)
                handle.write("\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(fresh, 0o644)
            os.replace(fresh, path)
        finally:
            if os.path.exists(fresh):
                os.unlink(fresh)
        self._sync_dir(folder)

    def _remove_dir(self, version: str) -> None:
        """Rename out of sight first, so a half-deleted release is never listed."""
        doomed = os.path.join(self._releases_dir(), f".removing-{version}-{secrets.token_hex(4)}")
        os.rename(os.path.join(self._releases_dir(), version), doomed)
        shutil.rmtree(doomed)

    @staticmethod
    def _sync_dir(path: str) -> None:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

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
