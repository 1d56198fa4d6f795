# Copyright: fleet.rollout developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Runs fleet.rollout.lb_member in the controller when the task's connection is local."""

from __future__ import annotations

from ansible_collections.fleet.rollout.plugins.module_utils._lb_tasks import MEMBER_TASK
from ansible_collections.fleet.rollout.plugins.plugin_utils._controller_side import ControllerSideAction


class ActionModule(ControllerSideAction):
    TASK = MEMBER_TASK
