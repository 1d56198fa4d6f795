"""fleet.rollout.release through real ansible-playbook runs: real tar.gz artifacts, a real HTTP server."""

from __future__ import annotations

import hashlib
import os
import tarfile
import typing as t
from pathlib import Path

import pytest

from tests.support import VENV_PYTHON, make_tar, oldest_python, run_tasks, serve_http
from tests.unit.test_artifact_limits import zero_bomb

OLDEST_PYTHON = oldest_python()


def sha256(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def artifacts(tmp_path: Path) -> Path:
    folder = tmp_path / "artifacts"
    folder.mkdir()
    for version in ("1.0.0", "1.1.0", "1.3.0"):
        make_tar(folder / f"app-{version}.tar.gz", {"VERSION": version, "app.py": "print('hi')\n"})
    with tarfile.open(folder / "evil.tar.gz", "w:gz") as tar:
        link = tarfile.TarInfo("config")
        link.type, link.linkname = tarfile.SYMTYPE, "../../../etc"
        tar.addfile(link)
    return folder


@pytest.fixture
def artifact_server(artifacts: Path) -> t.Iterator[str]:
    with serve_http(artifacts) as url:
        yield url


def release(**options: t.Any) -> dict[str, t.Any]:
    return {"fleet.rollout.release": options}


def test_deploy_changes_once_and_check_mode_predicts(tmp_path: Path, artifacts: Path) -> None:
    root = tmp_path / "srv" / "app"
    deploy = release(root=str(root), version="1.0.0", src=str(artifacts / "app-1.0.0.tar.gz"))

    predicted = run_tasks(tmp_path, [deploy], check=True)["r0"]
    assert (predicted["changed"], predicted["current"], predicted["installed"]) == (True, "1.0.0", "1.0.0")
    assert not root.exists()  # check mode touched nothing

    first, second = run_tasks(tmp_path, [deploy, deploy], diff=True).values()
    assert (first["changed"], second["changed"]) == (True, False)
    assert os.readlink(root / "current") == "releases/1.0.0"
    assert (root / "current" / "VERSION").read_text() == "1.0.0"
    assert first["diff"]["before"].startswith("current: None\n")
    assert first["diff"]["after"].startswith("current: 1.0.0\n")
    assert second["releases"][0]["installed_at"] == first["releases"][0]["installed_at"]

    again = run_tasks(tmp_path, [deploy], check=True)["r0"]
    assert again["changed"] is False
    assert "diff" not in again  # only with --diff


def test_lifecycle_url_rollback_bad_marks_and_failures(
    tmp_path: Path, artifacts: Path, artifact_server: str
) -> None:
    root = str(tmp_path / "app")

    def from_url(version: str, checksum: str | None = None, **more: t.Any) -> dict[str, t.Any]:
        artifact = artifacts / f"app-{version}.tar.gz"
        url = f"{artifact_server}/{artifact.name}"
        return release(root=root, version=version, url=url, checksum=checksum or sha256(artifact), **more)

    failing = {"ignore_errors": True}
    tasks = [
        release(root=root, version="1.0.0", src=str(artifacts / "app-1.0.0.tar.gz")),
        from_url("1.1.0"),
        release(root=root, state="rolled_back"),
        release(root=root, state="rolled_back"),
        release(root=root, state="marked_bad", version="1.1.0", reason="canary failed"),
        release(root=root, state="marked_bad", version="1.1.0"),
        {**from_url("1.1.0"), **failing},
        release(root=root, state="absent", version="1.1.0"),
        release(root=root, state="absent", version="1.1.0"),
        {**release(root=root, version="1.2;rm -rf /", src=str(artifacts / "app-1.0.0.tar.gz")), **failing},
        {**from_url("1.3.0", checksum=sha256(artifacts / "app-1.1.0.tar.gz")), **failing},
        {**release(root=root, version="1.4.0", src=str(artifacts / "evil.tar.gz")), **failing},
        {**release(root=root, state="absent", version="1.0.0"), **failing},
    ]
    r = run_tasks(tmp_path, tasks)
    assert [r[f"r{i}"]["changed"] for i in range(9)] == [
        True,
        True,
        True,
        False,
        True,
        False,
        False,
        True,
        False,
    ]

    assert (r["r1"]["current"], r["r1"]["previous"]) == ("1.1.0", "1.0.0")
    assert r["r1"]["releases"][1]["source"].endswith("/app-1.1.0.tar.gz")
    assert (r["r2"]["current"], r["r2"]["previous"]) == ("1.0.0", "1.1.0")
    assert r["r4"]["marked_bad"]["1.1.0"]["reason"] == "canary failed"
    assert r["r5"]["previous"] is None  # a release marked bad is never "previous"

    assert r["r6"]["failed"] and "release 1.1.0 was marked bad" in r["r6"]["msg"]
    assert "canary failed; set force" in r["r6"]["msg"]
    assert r["r7"]["removed"] == ["1.1.0"]
    assert r["r9"]["failed"] and "invalid release version '1.2;rm -rf /'" in r["r9"]["msg"]
    assert r["r10"]["failed"] and "checksum mismatch for http://127.0.0.1:" in r["r10"]["msg"]
    assert r["r11"]["failed"] and "refusing archive member 'config'" in r["r11"]["msg"]
    assert r["r12"]["failed"] and "release 1.0.0 is current" in r["r12"]["msg"]
    # None of the failures left a trace: only the one release, and nothing half-made beside it.
    assert sorted(os.listdir(Path(root) / "releases")) == [
        "1.0.0",
        "1.1.0.bad",
    ]  # the bad mark outlives its release
    assert os.readlink(Path(root) / "current") == "releases/1.0.0"

    state_before = (Path(root) / ".release-state.json").read_text()
    checked = run_tasks(
        tmp_path,
        [
            release(root=root, state="rolled_back", version="1.0.0"),
            release(root=root, state="marked_bad", version="1.0.0"),
            release(root=root, state="absent", version="9.9.9"),
            from_url("1.3.0"),
        ],
        check=True,
    )
    assert [checked[f"r{i}"]["changed"] for i in range(4)] == [False, True, False, True]
    assert checked["r3"]["current"] == "1.3.0"
    assert (Path(root) / ".release-state.json").read_text() == state_before
    assert sorted(os.listdir(Path(root) / "releases")) == ["1.0.0", "1.1.0.bad"]


@pytest.mark.skipif(OLDEST_PYTHON is None, reason="python3.8 is not installed here")
def test_runs_on_the_oldest_managed_host_python(tmp_path: Path, artifacts: Path) -> None:
    root = str(tmp_path / "app")
    tasks = [
        release(root=root, version="1.0.0", src=str(artifacts / "app-1.0.0.tar.gz")),
        release(root=root, version="1.1.0", src=str(artifacts / "app-1.1.0.tar.gz")),
        release(root=root, state="rolled_back"),
        release(root=root, state="marked_bad", version="1.1.0"),
        {**release(root=root, version="1.4.0", src=str(artifacts / "evil.tar.gz")), "ignore_errors": True},
    ]
    r = run_tasks(tmp_path, tasks, python=str(OLDEST_PYTHON))
    assert [r[f"r{i}"]["changed"] for i in range(4)] == [True, True, True, True]
    assert r["r3"]["current"] == "1.0.0"
    assert "refusing archive member 'config'" in r["r4"]["msg"]


@pytest.mark.parametrize("where", ["controller", "module"])
def test_restart_command_runs_once_current_moved(tmp_path: Path, artifacts: Path, where: str) -> None:
    """Switch and restart in one task: the command sees the new `current`, runs only when it moved (or
    always, when asked), never in check mode, and its failure fails the task with its output."""
    root, log = tmp_path / "srv" / "app", tmp_path / "restarts.log"
    # In the controller's own process when the interpreter is the controller's; else as a module.
    python = VENV_PYTHON if where == "controller" else "/usr/bin/python3"
    restart = ["sh", "-c", f'readlink "{root}/current" >> "{log}"']

    def deploy(version: str, **extra: t.Any) -> dict[str, t.Any]:
        src = str(artifacts / f"app-{version}.tar.gz")
        return release(root=str(root), version=version, src=src, restart_command=restart, **extra)

    predicted = run_tasks(tmp_path, [deploy("1.0.0")], check=True, python=python)["r0"]
    assert (predicted["changed"], predicted["restarted"], log.exists()) == (True, True, False)
    broken = f"sh -c 'echo cannot bind >&2; exit 3' {root}"
    r = run_tasks(
        tmp_path,
        [
            deploy("1.0.0"),
            deploy("1.0.0"),
            deploy("1.0.0", restart_when="always"),
            deploy("1.1.0"),
            {**release(root=str(root), state="rolled_back", restart_command=broken), "ignore_errors": True},
        ],
        python=python,
    )
    assert [r[f"r{i}"]["changed"] for i in range(5)] == [True, False, True, True, True]
    assert [r[f"r{i}"]["restarted"] for i in range(4)] == [True, False, True, True]
    assert log.read_text().split() == ["releases/1.0.0", "releases/1.0.0", "releases/1.1.0"]
    failed = r["r4"]
    assert failed["failed"] and (failed["rc"], failed["stderr"].strip()) == (3, "cannot bind")
    assert "exited 3 with 1.0.0 current: cannot bind" in failed["msg"]
    assert os.readlink(root / "current") == "releases/1.0.0"  # the switch stays; a rescue decides


@pytest.mark.parametrize("where", ["controller", "module"])
def test_refused_input_leaves_nothing(tmp_path: Path, artifacts: Path, where: str) -> None:
    """Issue 14, item 6 through ansible-playbook: an archive bomb (1 MB of gzip, 1 GiB unpacked) over
    max_unpacked_size, an empty archive and versions outside the safe alphabet are refused, naming them,
    in the controller and as a module, and none of them leaves anything under releases/."""
    root = tmp_path / "app"
    python = VENV_PYTHON if where == "controller" else "/usr/bin/python3"
    bomb = zero_bomb(tmp_path / "bomb.tar.gz")
    empty = tmp_path / "empty.tar.gz"
    with tarfile.open(empty, "w:gz") as tar:
        folder = tarfile.TarInfo("app")
        folder.type = tarfile.DIRTYPE
        tar.addfile(folder)
    good = str(artifacts / "app-1.0.0.tar.gz")
    failing = {"ignore_errors": True}
    tasks = [
        release(root=str(root), version="1.0.0", src=good, max_unpacked_size="1M"),
        {**release(root=str(root), version="2.0.0", src=str(bomb), max_unpacked_size="10M"), **failing},
        {**release(root=str(root), version="2.0.0", src=str(empty)), **failing},
        {**release(root=str(root), version="-rf", src=good), **failing},
        {**release(root=str(root), version="vé1", src=good), **failing},
        {**release(root=str(root), state="rolled_back", version="-rf"), **failing},
        {**release(root=str(root), state="marked_bad", version="vé1"), **failing},
        {**release(root=str(root), version="2.0.0", src=good, max_unpacked_size="lots"), **failing},
    ]
    r = run_tasks(tmp_path, tasks, python=python)
    assert r["r0"]["changed"] and r["r0"]["current"] == "1.0.0"
    assert (
        r["r1"]["failed"]
        and f"refusing archive {bomb}: its files add up to at least 1.0 GiB" in r["r1"]["msg"]
    )
    assert "more than max_unpacked_size (10.0 MiB)" in r["r1"]["msg"]
    assert r["r2"]["failed"] and r["r2"]["msg"].endswith(
        f"refusing archive {empty}: it is empty (only 1 directory), not a release"
    )
    for name, version in (("r3", "-rf"), ("r4", "vé1"), ("r5", "-rf"), ("r6", "vé1")):
        assert r[name]["failed"] and f"invalid release version {version!r}" in r[name]["msg"], name
    assert r["r7"]["failed"] and "max_unpacked_size" in r["r7"]["msg"]
    assert os.listdir(root / "releases") == ["1.0.0"]
    assert os.readlink(root / "current") == "releases/1.0.0"
