"""What an archive may unpack to: a bomb is refused from its headers, before anything is written, by
max_unpacked_size or by the free space of the release root; an archive with nothing in it is refused."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
from pathlib import Path

import pytest
from ansible_collections.fleet.rollout.plugins.module_utils import _artifact
from ansible_collections.fleet.rollout.plugins.module_utils._artifact import ReleaseSource
from ansible_collections.fleet.rollout.plugins.module_utils._errors import InvalidInputError
from ansible_collections.fleet.rollout.plugins.module_utils._release import ReleaseManager

# Through the module, not imported names: on a version without the limit each test fails on its own.
MIB = 1024 * 1024
GIB = 1024 * MIB
BOMB_SIZE = GIB


def zero_bomb(path: Path, size: int = BOMB_SIZE) -> Path:
    """A tar.gz of one member of ``size`` zero bytes (a multiple of 1 MiB), about size/1000 on disk.

    Gzip members may be concatenated, so one compressed MiB of zeros is repeated instead of compressing
    the whole size: the test costs milliseconds, not the seconds of a real 1 GiB compression.
    """
    header = tarfile.TarInfo("zeros")
    header.size, header.mode = size, 0o644
    one_mib = gzip.compress(bytes(MIB), compresslevel=9)
    with open(path, "wb") as handle:
        handle.write(gzip.compress(header.tobuf(format=tarfile.GNU_FORMAT)))
        for _ in range(size // MIB):
            handle.write(one_mib)
        handle.write(gzip.compress(bytes(2 * tarfile.BLOCKSIZE)))  # the end-of-archive blocks
    return path


def make_tar(path: Path, members: dict[str, str | None]) -> Path:
    """A tar.gz of files (name: text) and directories (name: None)."""
    with tarfile.open(path, "w:gz") as tar:
        for name, text in members.items():
            info = tarfile.TarInfo(name)
            if text is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                data = text.encode()
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture(scope="module")
def bomb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return zero_bomb(tmp_path_factory.mktemp("bomb") / "bomb.tar.gz")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "app"


def deploy(root: Path, archive: Path, max_unpacked_size: int | None = None) -> dict[str, object]:
    manager = ReleaseManager(str(root), max_unpacked_size=max_unpacked_size)
    return manager.deploy("1", ReleaseSource(src=str(archive)))


def assert_nothing_staged(root: Path) -> None:
    assert os.listdir(root / "releases") == []  # no release, no .incoming-* left behind
    assert not os.path.lexists(root / "current")


def test_the_bomb_is_small_and_unpacks_to_a_gib(bomb: Path) -> None:
    assert bomb.stat().st_size < 2 * MIB
    with tarfile.open(bomb, "r:gz") as tar:
        first = tar.next()
    assert first is not None and (first.name, first.size) == ("zeros", BOMB_SIZE)


def test_an_archive_over_max_unpacked_size_is_refused_before_unpacking(root: Path, bomb: Path) -> None:
    with pytest.raises(InvalidInputError) as caught:
        deploy(root, bomb, max_unpacked_size=10 * MIB)
    message = caught.value.message
    assert f"refusing archive {bomb}" in message
    assert "at least 1.0 GiB (1073741824 bytes" in message
    assert "more than max_unpacked_size (10.0 MiB)" in message
    assert caught.value.details["unpacked_size"] == BOMB_SIZE
    assert caught.value.details["limit"] == 10 * MIB
    assert_nothing_staged(root)


def test_the_limit_is_on_the_sum_of_the_files(tmp_path: Path, root: Path) -> None:
    archive = make_tar(tmp_path / "many.tar.gz", {f"f{i}": "x" * 400 for i in range(3)})
    with pytest.raises(InvalidInputError) as caught:
        deploy(root, archive, max_unpacked_size=1000)
    assert (
        "at least 1.2 KiB (1200 bytes in its first 3 members), more than max_unpacked_size (1000 bytes)"
        in (caught.value.message)
    )
    assert_nothing_staged(root)
    deploy(root, archive, max_unpacked_size=1200)  # exactly the limit is fine
    assert sorted(os.listdir(root / "releases" / "1")) == ["f0", "f1", "f2"]


def test_without_the_option_the_free_space_is_the_limit(
    root: Path, bomb: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[str] = []

    def space(path: str) -> tuple[int, int]:
        seen.append(path)
        return 10 * GIB, 600 * MIB  # 100 MiB stay free (less than 10% of 10 GiB): 500 MiB may be used

    monkeypatch.setattr(_artifact, "filesystem_space", space)
    with pytest.raises(InvalidInputError) as caught:
        deploy(root, bomb)
    message = caught.value.message
    assert f"refusing archive {bomb}" in message
    assert f"more than what the filesystem of {root / 'releases'} can take (500.0 MiB" in message
    assert "600.0 MiB free, of which 100.0 MiB stay free" in message
    assert caught.value.details["limit"] == 500 * MIB
    assert seen == [str(root / "releases")]
    assert_nothing_staged(root)


def test_the_free_space_caps_a_larger_max_unpacked_size(
    root: Path, bomb: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_artifact, "filesystem_space", lambda path: (10 * GIB, 600 * MIB))
    with pytest.raises(InvalidInputError, match="can take") as caught:
        deploy(root, bomb, max_unpacked_size=5 * GIB)
    assert caught.value.details["limit"] == 500 * MIB


@pytest.mark.parametrize(
    ("total", "available", "limit"),
    [
        (10 * GIB, 600 * MIB, 500 * MIB),  # a big filesystem keeps 100 MiB
        (200 * MIB, 150 * MIB, 130 * MIB),  # a small one keeps 10% of itself
        (10 * GIB, 50 * MIB, 0),  # nearly full: nothing may be unpacked
    ],
)
def test_the_margin_is_10_percent_or_100_mib_whichever_is_smaller(
    monkeypatch: pytest.MonkeyPatch, total: int, available: int, limit: int
) -> None:
    monkeypatch.setattr(_artifact, "filesystem_space", lambda path: (total, available))
    assert _artifact.UnpackLimit.for_folder("/srv", None).size == limit
    assert _artifact.UnpackLimit.for_folder("/srv", 1).size == min(1, limit)


def test_the_real_free_space_lets_a_normal_release_through(tmp_path: Path, root: Path) -> None:
    archive = make_tar(tmp_path / "ok.tar.gz", {"app.py": "print()\n"})
    deploy(root, archive)
    assert (root / "current" / "app.py").read_text() == "print()\n"


def test_a_non_positive_max_unpacked_size_is_refused(root: Path) -> None:
    with pytest.raises(InvalidInputError, match="max_unpacked_size must be at least 1 byte, got 0"):
        ReleaseManager(str(root), max_unpacked_size=0)


@pytest.mark.parametrize(
    ("members", "what"),
    [({}, "no members"), ({"a": None}, "only 1 directory"), ({"a": None, "a/b": None}, "only 2 directories")],
)
def test_an_empty_archive_is_refused_naming_it(
    tmp_path: Path, root: Path, members: dict[str, str | None], what: str
) -> None:
    archive = make_tar(tmp_path / "empty.tar.gz", members)
    with pytest.raises(InvalidInputError) as caught:
        deploy(root, archive)
    assert caught.value.message == f"refusing archive {archive}: it is empty ({what}), not a release"
    assert caught.value.details["src"] == str(archive)
    assert_nothing_staged(root)


def test_an_archive_of_one_empty_file_is_a_release(tmp_path: Path, root: Path) -> None:
    deploy(root, make_tar(tmp_path / "marker.tar.gz", {"dir": None, "dir/READY": ""}))
    assert (root / "current" / "dir" / "READY").read_text() == ""


@pytest.mark.parametrize(
    ("size", "text"),
    [(0, "0 bytes"), (1023, "1023 bytes"), (1536, "1.5 KiB"), (10 * MIB, "10.0 MiB"), (3 * GIB, "3.0 GiB")],
)
def test_sizes_read_well(size: int, text: str) -> None:
    assert _artifact.format_size(size) == text
