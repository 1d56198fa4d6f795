# Copyright: fleet.rollout developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Runs fleet.rollout.rollout_lock in the controller when the task's connection is local."""

from __future__ import annotations

import dataclasses
import os
import socket
import typing as t

from ansible_collections.fleet.rollout.plugins.module_utils._lock_record import Holder
from ansible_collections.fleet.rollout.plugins.module_utils._lock_task import TASK, run_lock
from ansible_collections.fleet.rollout.plugins.plugin_utils._controller_side import ControllerSideAction


def run_lock_in_controller(
    params: dict[str, t.Any], check_mode: bool = False, diff: bool = False
) -> dict[str, t.Any]:
    """run_lock in an ansible-core worker process: forked by the ansible-playbook process (ansible-core
    forks every worker from it, 2.17 to 2.21), whose end frees a lock taken with bind_to_controller."""
    controller = Holder.of(os.getppid()) if params.get("bind_to_controller") else None
    return run_lock(params, check_mode, diff, controller=controller)


class ActionModule(ControllerSideAction):
    TASK = dataclasses.replace(TASK, runner=run_lock_in_controller)

    def run(self, tmp: t.Any = None, task_vars: dict[str, t.Any] | None = None) -> dict[str, t.Any]:
        # The controller's name goes into the record, also of a lock (a lease) taken on a target.
        if self._task.args.get("controller") is None:
            self._task.args = dict(self._task.args, controller=socket.gethostname())
        return super().run(tmp, task_vars)
