# Copyright: fleet.rollout developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Runs fleet.rollout.rollout_lock in the controller when the task's connection is local."""

from __future__ import annotations

from ansible_collections.fleet.rollout.plugins.module_utils import _lock
from ansible_collections.fleet.rollout.plugins.plugin_utils._controller_side import (
    ControllerSideAction,
    Runner,
)


class ActionModule(ControllerSideAction):
    MODULE = "fleet.rollout.rollout_lock"
    ARGUMENT_SPEC = _lock.ARGUMENT_SPEC
    SPEC_CONSTRAINTS = _lock.SPEC_CONSTRAINTS

    def runner(self) -> Runner:
        return _lock.run_lock
