"""ReleaseManager on real directories in tmp_path: install, switch, keep, roll back, remove, mark bad."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tarfile
import threading
import typing as t
from pathlib import Path

import pytest
from ansible_collections.fleet.rollout.plugins.module_utils._artifact import ReleaseSource
from ansible_collections.fleet.rollout.plugins.module_utils._errors import (
    CommandFailedError,
    ConflictError,
    ConnectionFailedError,
    FleetRolloutError,
    InvalidInputError,
    NotFoundError,
)
from ansible_collections.fleet.rollout.plugins.module_utils._release import (
    STATE_FILE,
    ReleaseManager,
    validate_version,
)
from ansible_collections.fleet.rollout.plugins.module_utils._restart import Restart


class Ticks:
    """A clock that moves one second per reading, so install order never ties."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        self.now += 1
        return self.now


def make_tar(path: Path, files: dict[str, str]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return path


def sha256(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "app"


@pytest.fixture
def artifacts(tmp_path: Path) -> dict[str, Path]:
    folder = tmp_path / "artifacts"
    folder.mkdir()
    return {
        v: make_tar(folder / f"app-{v}.tar.gz", {"VERSION": v, "bin/run": "#!/bin/sh\n"}) for v in "123456"
    }


def manager(root: Path, check_mode: bool = False, **kwargs: t.Any) -> ReleaseManager:
    kwargs.setdefault("now", Ticks())
    return ReleaseManager(str(root), check_mode=check_mode, **kwargs)


def deploy_all(root: Path, artifacts: dict[str, Path], versions: str, keep: int = 5) -> ReleaseManager:
    releases = manager(root)
    for version in versions:
        releases.deploy(version, ReleaseSource(src=str(artifacts[version])), keep=keep)
    return releases


def listing(root: Path) -> list[str]:
    return sorted(os.listdir(root / "releases")) if (root / "releases").exists() else []


# ---- present ----


def test_deploy_installs_and_switches_then_changes_nothing(root: Path, artifacts: dict[str, Path]) -> None:
    releases = manager(root)
    first = releases.deploy("1", ReleaseSource(src=str(artifacts["1"])))
    assert first["changed"] is True
    assert first["installed"] == "1"
    assert first["current"] == "1"
    assert os.readlink(root / "current") == "releases/1"  # relative: the root can move
    assert (root / "current" / "VERSION").read_text() == "1"
    again = releases.deploy("1", ReleaseSource(src=str(artifacts["1"])))
    assert again["changed"] is False
    assert again["installed"] is None
    assert again["releases"] == first["releases"]
    assert first["releases"][0]["source"] == str(artifacts["1"])


def test_check_mode_predicts_and_touches_nothing(root: Path, artifacts: dict[str, Path]) -> None:
    predicted = manager(root, check_mode=True).deploy("1", ReleaseSource(src=str(artifacts["1"])))
    assert predicted["changed"] is True
    assert predicted["current"] == "1"
    assert [r["version"] for r in predicted["releases"]] == ["1"]
    assert not root.exists()
    manager(root).deploy("1", ReleaseSource(src=str(artifacts["1"])))
    assert (
        manager(root, check_mode=True).deploy("1", ReleaseSource(src=str(artifacts["1"])))["changed"] is False
    )


def test_check_mode_only_warns_about_a_missing_src(root: Path) -> None:
    result = manager(root, check_mode=True).deploy("1", ReleaseSource(src="/nonexistent/app.tar.gz"))
    assert result["changed"] is True
    assert "does not exist" in result["warnings"][0]


def test_missing_src_fails_a_real_run(root: Path) -> None:
    with pytest.raises(NotFoundError, match=r"src /nonexistent/app\.tar\.gz does not exist"):
        manager(root).deploy("1", ReleaseSource(src="/nonexistent/app.tar.gz"))
    assert not root.exists()


def test_diff_shows_current_previous_and_releases(root: Path, artifacts: dict[str, Path]) -> None:
    releases = deploy_all(root, artifacts, "1")
    diff = releases.deploy("2", ReleaseSource(src=str(artifacts["2"])))["diff"]
    assert diff["before"] == "current: 1\nprevious: None\nreleases:\n  - 1\n"
    assert diff["after"] == "current: 2\nprevious: 1\nreleases:\n  - 1\n  - 2\n"


def test_deploy_from_a_directory_copies_it(root: Path, tmp_path: Path) -> None:
    source = tmp_path / "build"
    (source / "lib").mkdir(parents=True)
    (source / "lib" / "app.py").write_text("print()")
    (source / "app.py").symlink_to("lib/app.py")
    manager(root).deploy("1", ReleaseSource(src=str(source)))
    assert os.readlink(root / "releases" / "1" / "app.py") == "lib/app.py"
    assert (source / "lib" / "app.py").exists()  # copied, not moved


def test_directory_with_an_escaping_link_is_refused(root: Path, tmp_path: Path) -> None:
    source = tmp_path / "build"
    source.mkdir()
    (source / "passwd").symlink_to("/etc/passwd")
    with pytest.raises(InvalidInputError, match="escapes the release directory"):
        manager(root).deploy("1", ReleaseSource(src=str(source)))
    assert listing(root) == []


def test_url_download_is_verified_before_unpacking(root: Path, artifacts: dict[str, Path]) -> None:
    fetched: list[str] = []

    def download(url: str, out: t.BinaryIO) -> None:
        fetched.append(url)
        out.write(artifacts["1"].read_bytes())

    source = ReleaseSource(url="https://repo.test/app-1.tar.gz", checksum=sha256(artifacts["1"]))
    result = manager(root, download=download).deploy("1", source)
    assert fetched == ["https://repo.test/app-1.tar.gz"]
    assert result["releases"][0]["checksum"] == source.checksum
    assert listing(root) == ["1"]


def test_checksum_mismatch_leaves_nothing_behind(root: Path, artifacts: dict[str, Path]) -> None:
    def download(url: str, out: t.BinaryIO) -> None:
        out.write(artifacts["2"].read_bytes())

    source = ReleaseSource(url="https://repo.test/app-1.tar.gz", checksum=sha256(artifacts["1"]))
    with pytest.raises(
        InvalidInputError, match=re.escape("checksum mismatch for https://repo.test/app-1.tar.gz")
    ):
        manager(root, download=download).deploy("1", source)
    assert listing(root) == []  # neither the release, nor .incoming-*, nor .download-*
    assert not (root / "current").exists()


def test_checksum_of_a_local_archive_is_verified_too(root: Path, artifacts: dict[str, Path]) -> None:
    with pytest.raises(InvalidInputError, match="checksum mismatch"):
        manager(root).deploy("1", ReleaseSource(src=str(artifacts["1"]), checksum=sha256(artifacts["2"])))
    manager(root).deploy("1", ReleaseSource(src=str(artifacts["1"]), checksum=sha256(artifacts["1"])))


def test_download_failure_leaves_nothing_behind(root: Path) -> None:
    def download(url: str, out: t.BinaryIO) -> None:
        out.write(b"partial")
        raise ConnectionFailedError(f"download of {url} failed: HTTP 404 Not Found", url=url)

    source = ReleaseSource(url="https://repo.test/x.tar.gz", checksum="sha256:" + "0" * 64)
    with pytest.raises(ConnectionFailedError, match="404"):
        manager(root, download=download).deploy("1", source)
    assert listing(root) == []


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (ReleaseSource(), "exactly one of src and url"),
        (ReleaseSource(src="/a", url="http://b/"), "exactly one of src and url"),
        (ReleaseSource(url="http://b/"), "url needs checksum"),
        (ReleaseSource(src="/a", checksum="md5:abc"), "checksum must be sha256"),
        (ReleaseSource(src="/a", checksum="sha256:xyz"), "checksum must be sha256"),
    ],
)
def test_invalid_sources(root: Path, source: ReleaseSource, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        manager(root).deploy("1", source)
    assert not root.exists()


# ---- versions ----


@pytest.mark.parametrize(
    "version",
    [
        "",
        "a/b",
        "../x",
        "..",
        "1..2",
        "a b",
        "a\tb",
        "1;rm -rf",
        "a\\b",
        ".hidden",
        "a\x00b",
        "x" * 129,
        "1.0.bad",
    ],
)
def test_unsafe_versions_are_refused_naming_the_value(root: Path, version: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        manager(root).deploy(version, ReleaseSource(src="/a.tar.gz"))
    assert repr(version) in caught.value.message
    assert caught.value.details["version"] == version
    assert not root.exists()


@pytest.mark.parametrize("version", ["1.2.3", "v2024-05-01_1", "1.0.0+build.7", "release~rc1", "a:b@c"])
def test_usual_versions_are_fine(version: str) -> None:
    assert validate_version(version) == version


def test_each_state_validates_the_version(root: Path) -> None:
    for call in (
        lambda m: m.remove("a/b"),
        lambda m: m.mark_bad("a b"),
        lambda m: m.rollback("x;y"),
    ):
        with pytest.raises(InvalidInputError, match="invalid release version"):
            call(manager(root))
    assert not root.exists()


# ---- previous, rollback, keep ----


def test_previous_is_the_release_current_before(root: Path, artifacts: dict[str, Path]) -> None:
    releases = deploy_all(root, artifacts, "123")
    rolled = releases.rollback()
    assert (rolled["changed"], rolled["current"], rolled["previous"]) == (True, "2", "3")
    assert os.readlink(root / "current") == "releases/2"
    # Rolled back already: state reached, nothing to do (rather than flipping back to 3).
    assert releases.rollback()["changed"] is False
    explicit = releases.rollback("1")
    assert (explicit["current"], explicit["previous"]) == ("1", "2")
    assert releases.rollback("1")["changed"] is False


def test_rollback_in_check_mode_predicts_only(root: Path, artifacts: dict[str, Path]) -> None:
    deploy_all(root, artifacts, "12")
    predicted = manager(root, check_mode=True).rollback()
    assert (predicted["changed"], predicted["current"]) == (True, "1")
    assert os.readlink(root / "current") == "releases/2"


def test_rollback_without_a_previous_release_fails(root: Path, artifacts: dict[str, Path]) -> None:
    releases = deploy_all(root, artifacts, "1")
    with pytest.raises(NotFoundError, match="no previous release to roll back to"):
        releases.rollback()
    with pytest.raises(NotFoundError, match="cannot roll back to 9: it is not installed"):
        releases.rollback("9")


def test_previous_comes_from_history_not_mtimes(root: Path, artifacts: dict[str, Path]) -> None:
    releases = deploy_all(root, artifacts, "123")
    releases.rollback("1")
    # The newest install is 3, but the release current before 4 was 1.
    result = releases.deploy("4", ReleaseSource(src=str(artifacts["4"])))
    assert result["previous"] == "1"
    assert releases.rollback()["current"] == "1"


def test_keep_removes_the_oldest_but_never_current_or_previous(
    root: Path, artifacts: dict[str, Path]
) -> None:
    releases = deploy_all(root, artifacts, "123")
    releases.rollback("1")
    result = releases.deploy("4", ReleaseSource(src=str(artifacts["4"])), keep=1)
    assert result["removed"] == ["3", "2"]
    assert listing(root) == ["1", "4"]
    assert [(r["version"], r["current"], r["previous"]) for r in result["releases"]] == [
        ("1", False, True),
        ("4", True, False),
    ]


def test_keep_prunes_even_when_nothing_else_changes(root: Path, artifacts: dict[str, Path]) -> None:
    releases = deploy_all(root, artifacts, "12345")
    assert listing(root) == ["1", "2", "3", "4", "5"]
    predicted = manager(root, check_mode=True).deploy("5", ReleaseSource(src=str(artifacts["5"])), keep=2)
    assert (predicted["changed"], predicted["removed"]) == (True, ["3", "2", "1"])
    assert listing(root) == ["1", "2", "3", "4", "5"]
    result = releases.deploy("5", ReleaseSource(src=str(artifacts["5"])), keep=2)
    assert result["removed"] == ["3", "2", "1"]
    assert listing(root) == ["4", "5"]


def test_keep_must_be_positive(root: Path, artifacts: dict[str, Path]) -> None:
    with pytest.raises(InvalidInputError, match="keep must be at least 1"):
        manager(root).deploy("1", ReleaseSource(src=str(artifacts["1"])), keep=0)


# ---- absent ----


def test_absent_removes_one_release_and_never_the_current(root: Path, artifacts: dict[str, Path]) -> None:
    releases = deploy_all(root, artifacts, "12")
    with pytest.raises(ConflictError, match="release 2 is current"):
        releases.remove("2")
    assert manager(root, check_mode=True).remove("1")["changed"] is True
    assert listing(root) == ["1", "2"]
    result = releases.remove("1")
    assert (result["changed"], result["removed"], result["previous"]) == (True, ["1"], None)
    assert listing(root) == ["2"]
    assert releases.remove("1")["changed"] is False
    assert manager(root / "nowhere").remove("1")["changed"] is False
    assert not (root / "nowhere").exists()


# ---- marked bad ----


def test_marked_bad_blocks_deploy_unless_forced(root: Path, artifacts: dict[str, Path]) -> None:
    releases = deploy_all(root, artifacts, "12")
    marked = releases.mark_bad("2", reason="canary failed")
    assert marked["changed"] is True
    assert marked["marked_bad"]["2"]["reason"] == "canary failed"
    assert releases.mark_bad("2", reason="again")["changed"] is False
    releases.rollback()
    with pytest.raises(
        ConflictError, match=r"release 2 was marked bad at .*: canary failed; set force"
    ) as caught:
        releases.deploy("2", ReleaseSource(src=str(artifacts["2"])))
    assert caught.value.details["version"] == "2"
    assert os.readlink(root / "current") == "releases/1"
    forced = releases.deploy("2", ReleaseSource(src=str(artifacts["2"])), force=True)
    assert (forced["current"], forced["releases"][1]["bad"]) == ("2", True)


def test_marked_bad_releases_are_never_previous(root: Path, artifacts: dict[str, Path]) -> None:
    releases = deploy_all(root, artifacts, "123")
    releases.mark_bad("2")
    assert releases.rollback()["current"] == "1"
    with pytest.raises(ConflictError, match="marked bad"):
        releases.rollback("2")


def test_a_version_can_be_marked_bad_before_it_exists(root: Path, artifacts: dict[str, Path]) -> None:
    assert manager(root, check_mode=True).mark_bad("7")["changed"] is True
    assert not root.exists()
    result = manager(root).mark_bad("7", reason="known broken build")
    assert result["releases"] == []
    assert "marked bad: 7" in result["diff"]["after"]
    with pytest.raises(ConflictError, match="marked bad"):
        manager(root).deploy("7", ReleaseSource(src=str(artifacts["1"])))


# ---- state on disk ----


def test_state_file_records_history_installs_and_marks(root: Path, artifacts: dict[str, Path]) -> None:
    releases = deploy_all(root, artifacts, "12")
    releases.rollback()
    releases.mark_bad("2")
    state = json.loads((root / STATE_FILE).read_text())
    assert [(e["version"], e["action"], e["from"]) for e in state["history"]] == [
        ("1", "deploy", None),
        ("2", "deploy", "1"),
        ("1", "rollback", "2"),
    ]
    assert sorted(state["releases"]) == ["1", "2"]
    assert "+00:00" in state["releases"]["1"]["installed_at"]
    mark = json.loads((root / "releases" / "2.bad").read_text())  # beside the release directory
    assert set(mark) == {"marked_at", "reason"}
    assert [p.name for p in root.iterdir() if p.name.startswith(".")] == [STATE_FILE]  # no temp files left
    assert not [p.name for p in (root / "releases").iterdir() if p.name.startswith(".")]


def test_a_bad_mark_made_by_hand_counts(root: Path, artifacts: dict[str, Path]) -> None:
    releases = deploy_all(root, artifacts, "1")
    (root / "releases" / "2.bad").write_text("do not ship: broken migration\n")
    with pytest.raises(ConflictError, match="release 2 was marked bad at None: marked by hand"):
        releases.deploy("2", ReleaseSource(src=str(artifacts["2"])))


# ---- the restart command ----


class RecordedCommands:
    def __init__(self, rc: int = 0) -> None:
        self.rc = rc
        self.calls: list[tuple[list[str], str | None]] = []
        self.root: Path | None = None

    def __call__(self, argv: list[str]) -> tuple[int, str, str]:
        current = os.readlink(self.root / "current") if self.root else None
        self.calls.append((argv, current))
        return self.rc, "out", "boom" if self.rc else ""


def test_the_restart_command_runs_after_the_switch_only_when_current_moved(
    root: Path, artifacts: dict[str, Path]
) -> None:
    commands = RecordedCommands()
    commands.root = root
    releases = manager(root, run_command=commands)
    restart = Restart.parse("appctl restart 'my app'")
    first = releases.deploy("1", ReleaseSource(src=str(artifacts["1"])), restart=restart)
    assert (first["restarted"], first["restart"]["rc"]) == (True, 0)
    assert commands.calls == [(["appctl", "restart", "my app"], os.path.join("releases", "1"))]
    again = releases.deploy("1", ReleaseSource(src=str(artifacts["1"])), restart=restart)
    assert (again["changed"], again["restarted"], len(commands.calls)) == (False, False, 1)
    always = Restart.parse(["appctl", "restart"], always=True)
    forced = releases.deploy("1", ReleaseSource(src=str(artifacts["1"])), restart=always)
    assert (forced["changed"], forced["restarted"], len(commands.calls)) == (True, True, 2)
    staged = releases.deploy("2", ReleaseSource(src=str(artifacts["2"])), make_current=False, restart=always)
    assert (staged["restarted"], len(commands.calls)) == (False, 2)  # staging never restarts
    predicted = manager(root, check_mode=True).deploy(
        "2", ReleaseSource(src=str(artifacts["2"])), restart=always
    )
    assert (predicted["changed"], predicted["restarted"], len(commands.calls)) == (True, True, 2)
    releases.deploy("2", ReleaseSource(src=str(artifacts["2"])), restart=restart)
    back = releases.rollback(restart=restart)
    assert (back["current"], back["restarted"]) == ("1", True)
    assert commands.calls[-1] == (["appctl", "restart", "my app"], os.path.join("releases", "1"))


def test_a_failing_restart_command_fails_with_its_output_and_leaves_current_switched(
    root: Path, artifacts: dict[str, Path]
) -> None:
    releases = manager(root, run_command=RecordedCommands(rc=3))
    with pytest.raises(CommandFailedError, match="'appctl restart' exited 3 with 1 current: boom") as caught:
        releases.deploy("1", ReleaseSource(src=str(artifacts["1"])), restart=Restart.parse("appctl restart"))
    assert (caught.value.details["rc"], caught.value.details["stderr"]) == (3, "boom")
    assert os.readlink(root / "current") == os.path.join("releases", "1")


@pytest.mark.parametrize("command", ["", "   ", "'unclosed", [], [""], [3], 7])
def test_bad_restart_commands_are_refused_naming_the_value(command: object) -> None:
    with pytest.raises(InvalidInputError, match="restart_command"):
        Restart.parse(command)


def test_staging_already_drops_what_the_switch_would(root: Path, artifacts: dict[str, Path]) -> None:
    releases = deploy_all(root, artifacts, "123")
    staged = releases.deploy("4", ReleaseSource(src=str(artifacts["4"])), keep=2, make_current=False)
    assert staged["removed"] == ["1"]  # 2 is previous, 3 current: both kept
    switched = releases.deploy("4", ReleaseSource(src=str(artifacts["4"])), keep=2)
    assert switched["removed"] == ["2"]  # now 3 is previous


def test_releases_installed_by_hand_are_listed_by_mtime(root: Path, artifacts: dict[str, Path]) -> None:
    deploy_all(root, artifacts, "1")
    (root / "releases" / "0.9").mkdir()
    os.utime(root / "releases" / "0.9", (1_000_000_000, 1_000_000_000))
    (root / "releases" / ".incoming-2-abc").mkdir()  # a crashed install is not a release
    result = manager(root).deploy("1", ReleaseSource(src=str(artifacts["1"])))
    first = result["releases"][0]
    assert (first["version"], first["installed_at"]) == ("0.9", "2001-09-09T01:46:40+00:00")
    assert [r["version"] for r in result["releases"]] == ["0.9", "1"]


class Killed(BaseException):
    """SIGKILL at this point of a run: nothing after it happens, no handler sees it."""


def test_a_release_left_by_a_run_killed_before_the_state_was_saved_keeps_its_install_order(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Archives made with `tar -C build .`: a `.` member carrying an old mtime (here the epoch).
    archives = {}
    for version in "1234":
        path = tmp_path / f"app-{version}.tar.gz"
        with tarfile.open(path, "w:gz") as tar:
            folder = tarfile.TarInfo(".")
            folder.type, folder.mode, folder.mtime = tarfile.DIRTYPE, 0o755, 0
            tar.addfile(folder)
            data = version.encode()
            member = tarfile.TarInfo("./VERSION")
            member.size, member.mode, member.mtime = len(data), 0o644, 0
            tar.addfile(member, io.BytesIO(data))
        archives[version] = ReleaseSource(src=str(path))
    releases = manager(root)
    releases.deploy("1", archives["1"])

    def killed(*_args: t.Any) -> None:
        raise Killed

    # the staging of 2 is killed between renaming releases/2 into place and saving the state file
    monkeypatch.setattr(ReleaseManager, "_save_state", killed)
    with pytest.raises(Killed):
        releases.deploy("2", archives["2"], make_current=False)
    monkeypatch.undo()
    assert listing(root) == ["1", "2"]
    assert "2" not in json.loads((root / STATE_FILE).read_text())["releases"]

    # the run again: 2 is already there and is switched to; its install time is still after 1's
    switched = releases.deploy("2", archives["2"])
    assert [r["version"] for r in switched["releases"]] == ["1", "2"], switched["releases"]
    releases.deploy("3", archives["3"], keep=3)
    releases.deploy("4", archives["4"], keep=3)
    assert listing(root) == ["2", "3", "4"]  # the oldest went, not the one the killed run staged


def test_current_that_is_a_directory_is_a_conflict(root: Path, artifacts: dict[str, Path]) -> None:
    (root / "current").mkdir(parents=True)
    with pytest.raises(ConflictError, match="exists but is not a symlink"):
        manager(root).deploy("1", ReleaseSource(src=str(artifacts["1"])))
    assert listing(root) == []


def test_a_corrupt_state_file_is_a_conflict(root: Path, artifacts: dict[str, Path]) -> None:
    root.mkdir()
    (root / STATE_FILE).write_text("{not json")
    with pytest.raises(ConflictError, match="is not valid JSON"):
        manager(root).deploy("1", ReleaseSource(src=str(artifacts["1"])))
    (root / STATE_FILE).write_text("[]")
    with pytest.raises(ConflictError, match="is not a release state file"):
        manager(root).deploy("1", ReleaseSource(src=str(artifacts["1"])))


def test_a_foreign_current_link_is_replaced(root: Path, artifacts: dict[str, Path], tmp_path: Path) -> None:
    root.mkdir()
    (root / "current").symlink_to(tmp_path)
    result = manager(root).deploy("1", ReleaseSource(src=str(artifacts["1"])))
    assert (result["changed"], result["current"]) == (True, "1")


def test_filesystem_errors_become_collection_errors(root: Path, artifacts: dict[str, Path]) -> None:
    root.mkdir()
    (root / "releases").write_text("not a directory")
    with pytest.raises(
        FleetRolloutError, match=r"deploying release 1 under .* failed: File exists"
    ) as caught:
        manager(root).deploy("1", ReleaseSource(src=str(artifacts["1"])))
    assert caught.value.details["path"] == str(root / "releases")


def test_current_never_disappears_while_switching(root: Path, artifacts: dict[str, Path]) -> None:
    releases = deploy_all(root, artifacts, "12")
    link = str(root / "current")
    missing: list[int] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            if not os.path.lexists(link):
                missing.append(1)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        for _ in range(100):
            releases.rollback("1")
            releases.rollback("2")
    finally:
        done.set()
        watcher.join()
    assert missing == []


def test_staged_installs_without_switching_then_present_only_switches(
    root: Path, artifacts: dict[str, Path]
) -> None:
    releases = deploy_all(root, artifacts, "1")
    source = ReleaseSource(src=str(artifacts["2"]))
    staged = releases.deploy("2", source, make_current=False)
    assert staged["changed"] is True
    assert staged["current"] == "1"
    assert (root / "releases" / "2" / "VERSION").read_text() == "2"
    assert os.readlink(root / "current") == os.path.join("releases", "1")
    assert releases.deploy("2", source, make_current=False)["changed"] is False
    switched = releases.deploy("2", ReleaseSource(src=str(root / "missing.tar.gz")))
    assert (switched["changed"], switched["current"], switched["installed"]) == (True, "2", None)
    releases.mark_bad("3")
    with pytest.raises(ConflictError, match="3"):
        releases.deploy("3", ReleaseSource(src=str(artifacts["3"])), make_current=False)
    assert not (root / "releases" / "3").exists()


def test_previous_is_the_release_a_first_switch_replaced(root: Path, artifacts: dict[str, Path]) -> None:
    # A host bootstrapped without this module: releases/1 and `current` exist, no state file yet.
    (root / "releases" / "1").mkdir(parents=True)
    (root / "current").symlink_to(os.path.join("releases", "1"))
    releases = manager(root)
    deployed = releases.deploy("2", ReleaseSource(src=str(artifacts["2"])))
    assert (deployed["current"], deployed["previous"]) == ("2", "1")
    rolled_back = releases.rollback()
    assert (rolled_back["changed"], rolled_back["current"]) == (True, "1")
