"""Dead lock holders (issue 14, item 3): a lock bound to an ansible-playbook process that is gone from this
host is taken over at once; a holder elsewhere keeps it until its TTL; force breaks a live one, audited."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import typing as t
from pathlib import Path
from unittest import mock

import pytest
from ansible_collections.fleet.rollout.plugins.module_utils import _lock_record
from ansible_collections.fleet.rollout.plugins.module_utils._errors import ConflictError
from ansible_collections.fleet.rollout.plugins.module_utils._lock import LockManager
from ansible_collections.fleet.rollout.plugins.module_utils._lock_record import (
    Holder,
    LockRecord,
    holder_is_gone,
    process_started,
)
from ansible_collections.fleet.rollout.plugins.module_utils._lock_task import run_lock

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00+00:00
HOLDER = Holder(4242, "boot-1 1000")


class FakeProcesses:
    """The process check: which (pid, started) are gone, and every question asked."""

    def __init__(self, gone: bool) -> None:
        self.gone = gone
        self.asked: list[tuple[int, str | None]] = []

    def __call__(self, pid: int, started: str | None) -> bool:
        self.asked.append((pid, started))
        return self.gone


def manager(
    locks: Path, processes: t.Callable[[int, str | None], bool], holder: Holder | None = None
) -> LockManager:
    return LockManager(str(locks), "web", now=lambda: T0 + 60, holder=holder, is_gone=processes)


def hold(locks: Path, holder: Holder | None = HOLDER, host: str | None = None) -> dict[str, t.Any]:
    """A live lock of run-a (TTL 1 h, taken a minute ago), bound to ``holder``, on ``host``."""
    taker = LockManager(str(locks), "web", now=lambda: T0, holder=holder)
    lock = t.cast(dict[str, t.Any], taker.acquire("run-a", ttl=3600)["lock"])
    if host is not None:
        data = json.loads((locks / "web.lock").read_text())
        data["host"] = lock["host"] = host
        (locks / "web.lock").write_text(json.dumps(data))
    return lock


@pytest.fixture
def locks(tmp_path: Path) -> Path:
    return tmp_path / "locks"


# ---- the record ----


def test_a_bound_lock_records_its_holder_process(locks: Path) -> None:
    lock = hold(locks)
    assert lock["holder_pid"] == 4242
    assert lock["holder_started"] == "boot-1 1000"
    assert lock["pid"] == os.getpid()  # the process that took it, as before
    on_disk = json.loads((locks / "web.lock").read_text())
    assert on_disk["holder_pid"] == 4242


def test_an_unbound_lock_records_no_holder(locks: Path) -> None:
    lock = hold(locks, holder=None)
    assert lock["holder_pid"] is None
    assert lock["holder_started"] is None


def test_a_record_of_an_older_version_has_no_holder() -> None:
    record = json.loads(LockRecord.new("web", "run-a", 60, T0).to_json())
    del record["holder_pid"], record["holder_started"]
    parsed = LockRecord.from_json(json.dumps(record).encode())
    assert parsed.holder_pid is None
    assert parsed.holder_started is None


@pytest.mark.parametrize(
    ("key", "value"), [("holder_pid", "4242"), ("holder_pid", True), ("holder_started", 5)]
)
def test_a_holder_of_a_wrong_type_makes_the_record_unreadable(key: str, value: t.Any) -> None:
    record = json.loads(LockRecord.new("web", "run-a", 60, T0, HOLDER).to_json())
    record[key] = value
    with pytest.raises(ValueError, match=key):
        LockRecord.from_json(json.dumps(record).encode())


# ---- judging: a dead holder on this host, a holder elsewhere, a live one ----


def test_a_lock_whose_holder_is_gone_from_this_host_is_taken_over_at_once(locks: Path) -> None:
    old = hold(locks)
    processes = FakeProcesses(gone=True)
    result = manager(locks, processes).acquire("run-b")
    assert processes.asked == [(4242, "boot-1 1000")]
    assert result["changed"] is True
    assert result["taken_over"] is True
    assert result["takeover"] == "holder_gone"
    assert result["previous_holder"] == old
    assert result["msg"].startswith("took over rollout lock 'web' from run run-a (")
    assert f"ansible-playbook process 4242 on {socket.gethostname()} is gone" in result["msg"]
    assert "did not wait for its expiry at 2026-01-01T01:00:00+00:00" in result["msg"]
    assert result["warnings"] == [result["msg"]]
    assert json.loads((locks / "web.lock").read_text())["run_id"] == "run-b"


def test_a_holder_on_another_host_keeps_its_lock_until_its_ttl(locks: Path) -> None:
    hold(locks, host="another-controller")
    processes = FakeProcesses(gone=True)
    with pytest.raises(ConflictError, match="is held by run run-a"):
        manager(locks, processes).acquire("run-b")
    assert processes.asked == []  # a pid of another machine says nothing here
    later = LockManager(str(locks), "web", now=lambda: T0 + 3600, is_gone=processes)
    assert later.acquire("run-b")["takeover"] == "expired"


def test_a_live_holder_keeps_its_lock(locks: Path) -> None:
    hold(locks)
    processes = FakeProcesses(gone=False)
    with pytest.raises(ConflictError, match="is held by run run-a") as caught:
        manager(locks, processes).acquire("run-b")
    assert caught.value.details["holder"]["holder_pid"] == 4242
    assert processes.asked == [(4242, "boot-1 1000")]


def test_an_unbound_lock_waits_for_its_ttl_whatever_its_process(locks: Path) -> None:
    hold(locks, holder=None)
    processes = FakeProcesses(gone=True)
    with pytest.raises(ConflictError):
        manager(locks, processes).acquire("run-b")
    assert processes.asked == []


def test_an_expired_lock_still_says_it_expired(locks: Path) -> None:
    hold(locks)
    late = LockManager(str(locks), "web", now=lambda: T0 + 7200, is_gone=FakeProcesses(gone=True))
    result = late.acquire("run-b")
    assert result["takeover"] == "expired"
    assert "it expired at" in result["msg"]


def test_check_mode_predicts_the_takeover_of_a_dead_holder(locks: Path) -> None:
    hold(locks)
    before = (locks / "web.lock").read_bytes()
    checking = LockManager(
        str(locks), "web", check_mode=True, now=lambda: T0 + 60, is_gone=FakeProcesses(True)
    )
    result = checking.acquire("run-b")
    assert result["takeover"] == "holder_gone"
    assert "check mode" in result["msg"]
    assert (locks / "web.lock").read_bytes() == before


# ---- force: a live holder is refused without it and broken with it, and the result says whom ----


def test_force_breaks_a_live_holder_and_names_it(locks: Path) -> None:
    old = hold(locks)
    processes = FakeProcesses(gone=False)
    with pytest.raises(ConflictError, match="set force"):
        manager(locks, processes).acquire("run-b")
    result = manager(locks, processes).acquire("run-b", force=True)
    assert result["takeover"] == "forced"
    assert result["previous_holder"] == old
    assert "broke rollout lock 'web' held by run run-a" in result["msg"]
    assert result["warnings"] == [result["msg"]]
    assert json.loads((locks / "web.lock").read_text())["run_id"] == "run-b"


def test_a_forced_release_says_it_broke_the_lock(locks: Path) -> None:
    hold(locks)
    result = manager(locks, FakeProcesses(gone=False)).release("operator", force=True)
    assert result["takeover"] == "forced"
    assert result["previous_holder"]["run_id"] == "run-a"


def test_taking_a_free_lock_or_our_own_is_no_takeover(locks: Path) -> None:
    assert manager(locks, FakeProcesses(False)).acquire("run-a")["takeover"] is None
    assert manager(locks, FakeProcesses(False)).acquire("run-a")["takeover"] is None
    assert manager(locks, FakeProcesses(False)).release("run-a")["takeover"] is None


# ---- the task: bind_to_controller binds the controller process given, a module binds nothing ----


def params(locks: Path, **overrides: t.Any) -> dict[str, t.Any]:
    base = {"name": "web", "state": "acquired", "run_id": "run-a", "ttl": 3600, "force": False}
    return {**base, "directory": str(locks), "bind_to_controller": True, **overrides}


def test_run_lock_binds_the_controller_process_when_asked(locks: Path) -> None:
    assert run_lock(params(locks), controller=HOLDER)["lock"]["holder_pid"] == 4242


def test_run_lock_binds_nothing_unless_asked_or_without_a_controller(locks: Path) -> None:
    assert run_lock(params(locks, bind_to_controller=False), controller=HOLDER)["lock"]["holder_pid"] is None
    assert run_lock(params(locks, run_id="run-a"))["lock"]["holder_pid"] is None


# ---- the process check ----


def test_a_pid_that_no_longer_runs_is_gone() -> None:
    with mock.patch.object(os, "kill", side_effect=ProcessLookupError):
        assert holder_is_gone(4242, "boot-1 1000") is True
        assert holder_is_gone(4242, None) is True


def test_a_process_of_another_user_runs() -> None:
    with (
        mock.patch.object(os, "kill", side_effect=PermissionError),
        mock.patch.object(_lock_record, "process_started", return_value="boot-1 1000"),
    ):
        assert holder_is_gone(4242, "boot-1 1000") is False
        assert holder_is_gone(4242, None) is False


def test_a_reused_pid_or_another_boot_is_gone() -> None:
    with mock.patch.object(os, "kill"), mock.patch.object(_lock_record, "process_started") as started:
        started.return_value = "boot-1 2000"  # a later process under the same pid
        assert holder_is_gone(4242, "boot-1 1000") is True
        started.return_value = "boot-2 1000"  # the machine rebooted since
        assert holder_is_gone(4242, "boot-1 1000") is True
        started.return_value = "boot-1 1000"
        assert holder_is_gone(4242, "boot-1 1000") is False


def test_without_proc_the_pid_alone_decides() -> None:
    with mock.patch.object(os, "kill"), mock.patch.object(_lock_record, "process_started", return_value=None):
        assert holder_is_gone(4242, "boot-1 1000") is False
    with mock.patch("builtins.open", side_effect=FileNotFoundError):
        assert process_started(os.getpid()) is None


@pytest.mark.parametrize("pid", [0, -1, 1])
def test_process_groups_and_init_are_never_gone(pid: int) -> None:
    with mock.patch.object(os, "kill", side_effect=ProcessLookupError) as kill:
        assert holder_is_gone(pid, None) is False
    kill.assert_not_called()


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="no /proc")
def test_a_real_process_is_told_from_its_pid_reused() -> None:
    started = process_started(os.getpid())
    assert started is not None
    assert started.split()[0] == Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    assert holder_is_gone(os.getpid(), started) is False
    assert holder_is_gone(os.getpid(), started.split()[0] + " 1") is True  # this pid, another start


def test_a_real_holder_that_died_frees_its_lock_at_once(locks: Path) -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        LockManager(str(locks), "web", holder=Holder.of(child.pid)).acquire("run-a")
        with pytest.raises(ConflictError):
            LockManager(str(locks), "web").acquire("run-b")
    finally:
        child.kill()
        child.wait()
    result = LockManager(str(locks), "web").acquire("run-b")
    assert result["takeover"] == "holder_gone"
    assert result["previous_holder"]["holder_pid"] == child.pid
