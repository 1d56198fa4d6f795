# Copyright: fleet.rollout developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Runs fleet.rollout.health_check in the controller when the task's connection is local."""

from __future__ import annotations

from ansible_collections.fleet.rollout.plugins.module_utils import _health
from ansible_collections.fleet.rollout.plugins.plugin_utils._controller_side import (
    ControllerSideAction,
    Runner,
)


class ActionModule(ControllerSideAction):
    MODULE = "fleet.rollout.health_check"
    ARGUMENT_SPEC = _health.ARGUMENT_SPEC
    SPEC_CONSTRAINTS = _health.SPEC_CONSTRAINTS

    def runner(self) -> Runner:
        return _health.check_health
