# Copyright (c) fleet.rollout developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
# ruff: noqa: E402 (ansible-test wants DOCUMENTATION above every import)

from __future__ import annotations

DOCUMENTATION = r"""
name: lock_guard
type: aggregate
short_description: Gives a rollout lock back when a run ends before the play that releases it
version_added: 1.0.0
author: fleet.rollout developers (!UNKNOWN)
description:
  - Watches the M(fleet.rollout.rollout_lock) tasks of a run. When the run ends while a lock it acquired is
    still held (an interrupt such as Ctrl-C, an error before the last play, ansible-core ending the playbook
    early), it releases that lock as its holder, and says so in a warning.
  - The playbooks C(fleet.rollout.deploy) and C(fleet.rollout.rollback) load it by themselves, from the
    C(callback_plugins) directory beside them, so nothing needs enabling for them. Enable it by name with
    C(callbacks_enabled) for playbooks of your own that take a rollout lock.
  - A lock it took on another machine (C(deploy_lock_host) not the controller) cannot be released from
    here; the warning then names the lock, its directory and its run id, for M(fleet.rollout.rollout_lock)
    with O(fleet.rollout.rollout_lock#module:state=released).
requirements:
  - nothing for the playbooks of this collection; elsewhere enabled with C(callbacks_enabled)
"""

import atexit
import os
import socket
from dataclasses import dataclass
from typing import Any

from ansible_collections.fleet.rollout.plugins.module_utils._errors import FleetRolloutError
from ansible_collections.fleet.rollout.plugins.module_utils._lock import LockManager
from ansible_collections.fleet.rollout.plugins.plugin_utils._callback import RolloutCallback
from ansible_collections.fleet.rollout.plugins.plugin_utils._task_result import result_parts

LOCK_ACTIONS = frozenset({"fleet.rollout.rollout_lock", "rollout_lock"})


@dataclass(frozen=True)
class HeldLock:
    """A lock this run acquired: where it is and under which run id."""

    directory: str
    name: str
    run_id: str
    machine: str  # the host name of the machine the lock file is on


class CallbackModule(RolloutCallback, name="lock_guard", kind="aggregate", needs_enabled=False):
    """Remembers the locks the run holds, and releases the ones still held when the run ends."""

    def __init__(self, display: Any = None) -> None:
        super().__init__(display=display)
        self._held: dict[str, HeldLock] = {}  # by the lock file's path
        atexit.register(self._give_back, "ansible-playbook ended before the play that gives it back")

    def v2_runner_on_ok(self, result: Any) -> None:
        _host, task, data = result_parts(result)
        if (getattr(task, "resolved_action", None) or task.action) not in LOCK_ACTIONS or task.check_mode:
            return
        path, lock = data.get("path"), data.get("lock")
        if not isinstance(path, str):
            return
        if isinstance(lock, dict):
            self._held[path] = HeldLock(os.path.dirname(path), lock["name"], lock["run_id"], lock["host"])
        else:
            self._held.pop(path, None)

    def v2_playbook_on_stats(self, stats: Any) -> None:
        self._give_back("the playbook ended before the play that gives it back")

    def _give_back(self, why: str) -> None:
        for path, held in list(self._held.items()):
            del self._held[path]
            if held.machine != socket.gethostname() or not os.path.exists(path):
                self._display.warning(
                    f"fleet.rollout: {why}; rollout lock {held.name!r} (run {held.run_id}) is still held on "
                    f"{held.machine} in {held.directory}: release it with fleet.rollout.rollout_lock "
                    f"state=released run_id={held.run_id}, or it expires at its TTL"
                )
                continue
            try:
                LockManager(held.directory, held.name).release(held.run_id)
            except FleetRolloutError as error:  # taken over by another run meanwhile: not ours to release
                self._display.warning(f"fleet.rollout: {why}; rollout lock {held.name!r}: {error.message}")
                continue
            self._display.warning(
                f"fleet.rollout: {why}; gave rollout lock {held.name!r} of run {held.run_id} back"
            )
