# Copyright: fleet.rollout developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Runs fleet.rollout.release_analysis in the controller when the task's connection is local."""

from __future__ import annotations

from ansible_collections.fleet.rollout.plugins.module_utils import _analysis_task
from ansible_collections.fleet.rollout.plugins.plugin_utils._controller_side import (
    ControllerSideAction,
    Runner,
)


class ActionModule(ControllerSideAction):
    MODULE = "fleet.rollout.release_analysis"
    ARGUMENT_SPEC = _analysis_task.ANALYSIS_ARGUMENT_SPEC

    def runner(self) -> Runner:
        return _analysis_task.analyse_release
