# Private to this collection: not a public API, may change without notice.
"""A release artifact on the host: its checksum, and unpacking or copying it so that nothing lands, or
points, outside the release directory."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import tarfile
import typing as t
import zlib

from ansible_collections.fleet.rollout.plugins.module_utils._errors import InvalidInputError

CHECKSUM_ALGORITHMS = ("sha256", "sha512")
MIB = 1024 * 1024
# Without max_unpacked_size an archive may fill its filesystem up to this margin, the smaller of the two:
# 10% of a small filesystem (a container's, a tmpfs) still leaves it usable, 100 MiB of a big one is
# room for logs while someone looks.
KEEP_FREE_FRACTION = 0.10
KEEP_FREE_BYTES = 100 * MIB
FILTER_ERROR: t.Any = getattr(tarfile, "FilterError", ())  # () catches nothing where filters are missing


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


def verify_checksum(path: str, checksum: str | None, origin: str) -> None:
    """Raise InvalidInputError when the file at ``path`` does not have ``checksum`` (None: no check)."""
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


def is_inside(path: str, root: str) -> bool:
    """Whether the real ``path`` is ``root`` or below it (both already resolved with realpath)."""
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def refused(member: tarfile.TarInfo, why: str) -> InvalidInputError:
    return InvalidInputError(f"refusing archive member {member.name!r}: {why}", member=member.name)


def filter_refusal(member: tarfile.TarInfo, error: Exception) -> InvalidInputError:
    """What tarfile's ``data`` filter refused, in the words check_member uses."""
    if isinstance(error, tarfile.SpecialFileError):
        why = "device, fifo or other special file"
    elif isinstance(error, tarfile.AbsoluteLinkError):
        why = f"link to the absolute path {member.linkname!r}"
    elif isinstance(error, tarfile.LinkOutsideDestinationError):
        why = f"link to {member.linkname!r} escapes the release directory"
    elif ".." in member.name.split("/"):
        why = "'..' in its path"
    else:
        why = "its path leads outside the release directory through a symlink"
    return refused(member, f"{why} ({error})")


def check_member(member: tarfile.TarInfo, dest: str) -> None:
    """Refuse a tar member that would land, or point, outside ``dest`` (realpath'ed): what tarfile's
    ``data`` filter does, for Pythons before 3.8.17 / 3.11.4 that lack it."""
    name = member.name

    def refuse(why: str) -> InvalidInputError:
        return refused(member, why)

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


def extract_tar(archive: str, dest: str, limit: UnpackLimit | None = None) -> None:
    """Unpack a (compressed) tar into the existing empty directory ``dest``, member by member, checked;
    nothing at all when it is empty or unpacks to more than ``limit``."""
    dest = os.path.realpath(dest)
    # Where Python has extraction filters, "data" refuses what leaves ``dest``; check_member elsewhere.
    has_filter = hasattr(tarfile, "data_filter")
    filter_arg: dict[str, t.Any] = {"filter": "data"} if has_filter else {}
    directories = []
    try:
        with tarfile.open(archive, "r:*") as tar:
            check_contents(tar, archive, limit)
            for member in tar:
                if not has_filter:
                    check_member(member, dest)
                elif os.path.isabs(member.name):  # the filter would unpack it relative to dest: refuse it
                    raise refused(member, "absolute path")
                # Files belong to whoever deploys, and never carry setuid/setgid or group/other write.
                member.mode &= ~0o7022
                member.uid, member.gid = os.geteuid(), os.getegid()
                member.uname = member.gname = ""
                # A read-only directory gets its mode last, or the files inside it could not be written.
                try:
                    tar.extract(member, dest, set_attrs=not member.isdir(), **filter_arg)
                except FILTER_ERROR as exc:  # a TarError too: caught before the unreadable archive
                    raise filter_refusal(member, exc) from exc
                if member.isdir():
                    directories.append(member)
    except (tarfile.TarError, EOFError, zlib.error) as exc:
        raise InvalidInputError(f"{archive} is not a readable tar archive: {exc}", src=archive) from exc
    for member in sorted(directories, key=lambda m: m.name, reverse=True):
        path = os.path.join(dest, member.name)
        os.chmod(path, member.mode)
        os.utime(path, (member.mtime, member.mtime))
    check_links_inside(dest)


def format_size(size: int) -> str:
    """``1536`` -> ``1.5 KiB``: sizes in messages, readable and still exact enough to compare."""
    if size < 1024:
        return f"{size} bytes"
    value = size / 1024
    units = ["KiB", "MiB", "GiB", "TiB"]
    while value >= 1024 and len(units) > 1:
        value /= 1024
        units.pop(0)
    return f"{value:.1f} {units[0]}"


def filesystem_space(path: str) -> tuple[int, int]:
    """(size, bytes available to unprivileged writers) of the filesystem that holds ``path``."""
    stats = os.statvfs(path)
    return stats.f_blocks * stats.f_frsize, stats.f_bavail * stats.f_frsize


@dataclasses.dataclass(frozen=True)
class UnpackLimit:
    """How much an archive may unpack to, and where that number comes from (for the refusal)."""

    size: int
    reason: str

    @classmethod
    def for_folder(cls, folder: str, max_unpacked_size: int | None) -> UnpackLimit:
        """``max_unpacked_size`` if given, but never more than ``folder``'s filesystem can take while
        keeping its margin free (KEEP_FREE_FRACTION of it or KEEP_FREE_BYTES, the smaller)."""
        total, available = filesystem_space(folder)
        keep_free = min(int(total * KEEP_FREE_FRACTION), KEEP_FREE_BYTES)
        free_limit = max(available - keep_free, 0)
        if max_unpacked_size is not None and max_unpacked_size <= free_limit:
            return cls(max_unpacked_size, f"max_unpacked_size ({format_size(max_unpacked_size)})")
        return cls(
            free_limit,
            f"what the filesystem of {folder} can take ({format_size(free_limit)}: "
            f"{format_size(available)} free, of which {format_size(keep_free)} stay free)",
        )


def check_contents(tar: tarfile.TarFile, archive: str, limit: UnpackLimit | None) -> None:
    """Read every header before anything is unpacked: refuse an archive with nothing but directories, or
    whose files add up to more than ``limit``. Stops at the member that crosses the limit: a bomb
    costs no more reading than the limit itself."""
    total = 0
    members = 0
    has_content = False
    for member in tar:
        members += 1
        has_content = has_content or not member.isdir()
        total += member.size if member.isfile() else 0
        if limit is not None and total > limit.size:
            raise InvalidInputError(
                f"refusing archive {archive}: its files add up to at least {format_size(total)} "
                f"({total} bytes in its first {members} members), more than {limit.reason}",
                src=archive,
                unpacked_size=total,
                limit=limit.size,
            )
    if not has_content:
        what = f"only {members} director{'y' if members == 1 else 'ies'}" if members else "no members"
        raise InvalidInputError(
            f"refusing archive {archive}: it is empty ({what}), not a release", src=archive
        )


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
