"""The callback fleet.rollout.lock_guard: it remembers the locks a run acquired and gives back the ones
still held when the run ends, on a real lock directory."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ansible_collections.fleet.rollout.plugins.callback.lock_guard import CallbackModule
from ansible_collections.fleet.rollout.plugins.module_utils._lock import LockManager


@dataclass
class Task:
    action: str = "fleet.rollout.rollout_lock"
    check_mode: bool = False


@dataclass
class Result:
    """What callbacks receive on ansible-core 2.19 and later."""

    result: dict[str, Any]
    task: Task = field(default_factory=Task)
    host: object = None


class Display:
    def __init__(self) -> None:
        self.warnings: list[str] = []

    def warning(self, msg: str) -> None:
        self.warnings.append(msg)


def guard() -> tuple[CallbackModule, Display]:
    callback = CallbackModule()
    display = Display()
    callback._display = display
    return callback, display


def test_a_lock_still_held_at_the_end_is_given_back(tmp_path: Path) -> None:
    callback, display = guard()
    acquired = LockManager(str(tmp_path), "app").acquire("run-1")
    callback.v2_runner_on_ok(Result(acquired))
    assert (tmp_path / "app.lock").exists()
    callback.v2_playbook_on_stats(None)
    assert not (tmp_path / "app.lock").exists()
    assert display.warnings == [
        "fleet.rollout: the playbook ended before the play that gives it back; "
        "gave rollout lock 'app' of run run-1 back"
    ]


def test_a_lock_the_run_released_is_left_alone(tmp_path: Path) -> None:
    callback, display = guard()
    manager = LockManager(str(tmp_path), "app")
    callback.v2_runner_on_ok(Result(manager.acquire("run-1")))
    callback.v2_runner_on_ok(Result(manager.release("run-1")))
    LockManager(str(tmp_path), "app").acquire("run-2")  # the next rollout's lock
    callback.v2_playbook_on_stats(None)
    assert (tmp_path / "app.lock").exists()
    assert display.warnings == []


def test_a_lock_taken_over_meanwhile_is_not_released(tmp_path: Path) -> None:
    callback, display = guard()
    callback.v2_runner_on_ok(Result(LockManager(str(tmp_path), "app").acquire("run-1")))
    LockManager(str(tmp_path), "app").acquire("run-2", force=True)
    callback.v2_playbook_on_stats(None)
    assert "run-2" in (tmp_path / "app.lock").read_text()
    assert "only its holder can release it" in display.warnings[0]


def test_a_lock_on_another_machine_is_named_in_a_warning(tmp_path: Path) -> None:
    callback, display = guard()
    acquired = LockManager(str(tmp_path), "app").acquire("run-1")
    acquired["lock"]["host"] = socket.gethostname() + "-elsewhere"
    callback.v2_runner_on_ok(Result(acquired))
    callback.v2_playbook_on_stats(None)
    assert (tmp_path / "app.lock").exists()
    assert "is still held on" in display.warnings[0] and "run_id=run-1" in display.warnings[0]


def test_other_tasks_and_check_mode_are_ignored(tmp_path: Path) -> None:
    callback, _display = guard()
    acquired = LockManager(str(tmp_path), "app").acquire("run-1")
    callback.v2_runner_on_ok(Result(acquired, task=Task(action="ansible.builtin.debug")))
    callback.v2_runner_on_ok(Result(acquired, task=Task(check_mode=True)))
    callback.v2_playbook_on_stats(None)
    assert (tmp_path / "app.lock").exists()
