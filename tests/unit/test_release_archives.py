"""Safe unpacking: hostile tar members are refused and a refused release leaves nothing behind."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from pathlib import Path

import pytest
from ansible_collections.fleet.rollout.plugins.module_utils._artifact import ReleaseSource
from ansible_collections.fleet.rollout.plugins.module_utils._errors import InvalidInputError
from ansible_collections.fleet.rollout.plugins.module_utils._release import ReleaseManager


def build(path: Path, members: list[tuple[str, str, str]], modes: dict[str, int] | None = None) -> Path:
    """kind: file (value = text), dir, sym or hard (value = link target), fifo."""
    modes = modes or {}
    with tarfile.open(path, "w:gz") as tar:
        for name, kind, value in members:
            info = tarfile.TarInfo(name)
            info.mode = modes.get(name, 0o755 if kind == "dir" else 0o644)
            data = None
            if kind == "file":
                data = io.BytesIO(value.encode())
                info.size = len(value.encode())
            elif kind == "dir":
                info.type = tarfile.DIRTYPE
            elif kind in ("sym", "hard"):
                info.type = tarfile.SYMTYPE if kind == "sym" else tarfile.LNKTYPE
                info.linkname = value
            else:
                info.type = tarfile.FIFOTYPE
            tar.addfile(info, data)
    return path


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "deep" / "app"


def deploy(root: Path, archive: Path) -> dict[str, object]:
    return ReleaseManager(str(root)).deploy("1", ReleaseSource(src=str(archive)))


HOSTILE_ARCHIVES = [
    ([("/tmp/evil", "file", "x")], "absolute path"),
    ([("../evil", "file", "x")], "'..' in its path"),
    ([("ok/../../evil", "file", "x")], "'..' in its path"),
    ([("passwd", "sym", "/etc/passwd")], "link to the absolute path '/etc/passwd'"),
    ([("up", "sym", "../../evil")], "link to '../../evil' escapes"),
    ([("a/b/up", "sym", "../../..")], "link to '../../..' escapes"),
    ([("hard", "hard", "/etc/passwd")], "link to the absolute path"),
    ([("hard", "hard", "../evil")], "link to '../evil' escapes"),
    ([("pipe", "fifo", "")], "device, fifo or other special file"),
    # A link that stays inside, then a member written through a second link that leaves.
    ([("d/l", "sym", ".."), ("d/l/../evil", "file", "x")], "'..' in its path"),
    ([("out", "sym", "d/l/.."), ("d/l", "sym", ".."), ("out/evil", "file", "x")], "through a symlink"),
    # The same pair without a file through it: caught by the sweep after unpacking.
    ([("out", "sym", "d/l/.."), ("d/l", "sym", "..")], "symlink to 'd/l/..' escapes"),
    # An earlier good member is no excuse: nothing of a refused archive remains.
    ([("good.txt", "file", "x"), ("../evil", "file", "x")], "'..' in its path"),
]


@pytest.mark.parametrize(("members", "why"), HOSTILE_ARCHIVES)
def test_hostile_members_are_refused_and_nothing_remains(
    tmp_path: Path, root: Path, members: list[tuple[str, str, str]], why: str
) -> None:
    archive = build(tmp_path / "bad.tar.gz", members)
    with pytest.raises(InvalidInputError, match="refusing") as caught:
        deploy(root, archive)
    assert why in caught.value.message
    assert os.listdir(root / "releases") == []  # no release, no .incoming-* left behind
    assert not os.path.lexists(root / "current")
    assert not (tmp_path / "deep" / "evil").exists()
    assert not (tmp_path / "evil").exists()


@pytest.mark.parametrize(("members", "why"), HOSTILE_ARCHIVES)
def test_without_extraction_filters_check_member_refuses_the_same(
    tmp_path: Path, root: Path, members: list[tuple[str, str, str]], why: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pythons before 3.8.17 and 3.11.4 have no ``data`` filter: the collection's own checks stand in."""
    monkeypatch.delattr(tarfile, "data_filter", raising=False)
    archive = build(tmp_path / "bad.tar.gz", members)
    with pytest.raises(InvalidInputError, match="refusing") as caught:
        deploy(root, archive)
    assert why in caught.value.message
    assert os.listdir(root / "releases") == []


def test_links_that_stay_inside_are_kept(tmp_path: Path, root: Path) -> None:
    archive = build(
        tmp_path / "ok.tar.gz",
        [
            ("lib/app.py", "file", "print()"),
            ("bin/app", "sym", "../lib/app.py"),
            ("lib/again.py", "hard", "lib/app.py"),
            ("self", "sym", "."),
        ],
    )
    deploy(root, archive)
    release = root / "releases" / "1"
    assert (release / "bin" / "app").read_text() == "print()"
    assert os.readlink(release / "bin" / "app") == "../lib/app.py"
    assert (release / "lib" / "again.py").stat().st_ino == (release / "lib" / "app.py").stat().st_ino


def test_modes_lose_setuid_and_group_write_and_read_only_dirs_work(tmp_path: Path, root: Path) -> None:
    archive = build(
        tmp_path / "modes.tar.gz",
        [("ro", "dir", ""), ("ro/x", "file", "x"), ("suid", "file", "x"), ("shared", "file", "x")],
        modes={"ro": 0o555, "suid": 0o4755, "shared": 0o664},
    )
    deploy(root, archive)
    release = root / "releases" / "1"
    assert stat.S_IMODE((release / "ro").stat().st_mode) == 0o555
    assert (release / "ro" / "x").read_text() == "x"
    assert stat.S_IMODE((release / "suid").stat().st_mode) == 0o755
    assert stat.S_IMODE((release / "shared").stat().st_mode) == 0o644
    assert stat.S_IMODE(release.stat().st_mode) == 0o755  # readable by the service, not 0700 like mkdtemp


@pytest.mark.parametrize("content", [b"not a tar at all", b"\x1f\x8b\x08\x00truncated gzip"])
def test_unreadable_archives_are_refused(tmp_path: Path, root: Path, content: bytes) -> None:
    archive = tmp_path / "broken.tar.gz"
    archive.write_bytes(content)
    with pytest.raises(InvalidInputError, match="is not a readable tar archive"):
        deploy(root, archive)
    assert os.listdir(root / "releases") == []


def test_a_truncated_archive_leaves_nothing_behind(tmp_path: Path, root: Path) -> None:
    good = build(tmp_path / "good.tar.gz", [(f"f{i}", "file", "x" * 5000) for i in range(20)])
    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(InvalidInputError, match="is not a readable tar archive"):
        deploy(root, truncated)
    assert os.listdir(root / "releases") == []
