# Copyright: fleet.rollout developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Runs fleet.rollout.release in the controller when the task's connection is local."""

from __future__ import annotations

import functools

from ansible_collections.fleet.rollout.plugins.module_utils._release_task import (
    ARGUMENT_SPEC,
    SPEC_CONSTRAINTS,
    apply_release,
)
from ansible_collections.fleet.rollout.plugins.plugin_utils._controller_side import (
    ControllerSideAction,
    Runner,
    run_locally,
)


class ActionModule(ControllerSideAction):
    MODULE = "fleet.rollout.release"
    ARGUMENT_SPEC = ARGUMENT_SPEC
    SPEC_CONSTRAINTS = SPEC_CONSTRAINTS

    def runner(self) -> Runner:
        return functools.partial(apply_release, run_command=run_locally)
