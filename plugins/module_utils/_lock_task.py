# Private to this collection: not a public API, may change without notice.
"""The task interface of fleet.rollout.rollout_lock: argument spec and runner.

The module and its controller-side action plugin both use these, so a task behaves the same whether it
runs on the target or inside the controller.
"""

from __future__ import annotations

import typing as t

from ansible_collections.fleet.rollout.plugins.module_utils._lock import (
    DEFAULT_DIRECTORY,
    DEFAULT_TTL,
    LockManager,
    validate_run_id,
)
from ansible_collections.fleet.rollout.plugins.module_utils._lock_record import Holder
from ansible_collections.fleet.rollout.plugins.module_utils._task_interface import TaskInterface
from ansible_collections.fleet.rollout.plugins.module_utils._validate import validate_plain_name

ARGUMENT_SPEC: dict[str, dict[str, t.Any]] = dict(
    name=dict(type="str", required=True),
    state=dict(type="str", default="acquired", choices=["acquired", "released"]),
    run_id=dict(type="str", required=True),
    ttl=dict(type="int", default=DEFAULT_TTL),
    force=dict(type="bool", default=False),
    directory=dict(type="path", default=DEFAULT_DIRECTORY),
    bind_to_controller=dict(type="bool", default=False),
    controller=dict(type="str"),
    take_over_from=dict(type="list", elements="str", default=[]),
)
SPEC_CONSTRAINTS: dict[str, t.Any] = {}


def run_lock(
    params: dict[str, t.Any],
    check_mode: bool = False,
    diff: bool = False,
    controller: Holder | None = None,
) -> dict[str, t.Any]:
    """Bring the lock the validated params name to their state. ``controller`` is the ansible-playbook
    process when the task runs inside it (the action plugin); a module cannot know it, so there
    bind_to_controller binds nothing and the TTL alone applies."""
    holder = controller if params.get("bind_to_controller") else None
    controller_name = params.get("controller")
    if controller_name is not None:
        validate_plain_name("controller", controller_name, 253, field="controller")
    for run_id in params.get("take_over_from") or []:
        validate_run_id(run_id)
    manager = LockManager(
        params["directory"],
        params["name"],
        check_mode=check_mode,
        holder=holder,
        controller=controller_name,
        handed_over_by=params.get("take_over_from") or (),
    )
    if params["state"] == "released":
        result = manager.release(params["run_id"], force=params["force"])
    else:
        result = manager.acquire(params["run_id"], ttl=params["ttl"], force=params["force"])
    if not diff:
        result.pop("diff", None)
    return result


TASK = TaskInterface("fleet.rollout.rollout_lock", ARGUMENT_SPEC, run_lock, SPEC_CONSTRAINTS)
