# Copyright: fleet.rollout developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Runs fleet.rollout.lb_member in the controller when the task's connection is local."""

from __future__ import annotations

from ansible_collections.fleet.rollout.plugins.module_utils import _lb_tasks
from ansible_collections.fleet.rollout.plugins.plugin_utils._controller_side import (
    ControllerSideAction,
    Runner,
)


class ActionModule(ControllerSideAction):
    MODULE = "fleet.rollout.lb_member"
    ARGUMENT_SPEC = _lb_tasks.MEMBER_ARGUMENT_SPEC
    SPEC_CONSTRAINTS = _lb_tasks.MEMBER_SPEC_CONSTRAINTS

    def runner(self) -> Runner:
        return _lb_tasks.apply_member
