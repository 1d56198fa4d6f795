# Private to this collection: not a public API, may change without notice.
"""The task interface of fleet.rollout.release: argument spec and runner.

The module and its controller-side action plugin both use these, so a task behaves the same whether it
runs on the target or inside the controller (a target that is the controller itself).
"""

from __future__ import annotations

import typing as t

from ansible_collections.fleet.rollout.plugins.module_utils._artifact import ReleaseSource
from ansible_collections.fleet.rollout.plugins.module_utils._http import OpenUrlDownload
from ansible_collections.fleet.rollout.plugins.module_utils._release import ReleaseManager
from ansible_collections.fleet.rollout.plugins.module_utils._restart import Restart
from ansible_collections.fleet.rollout.plugins.module_utils._task_interface import RunCommand, TaskInterface

ARGUMENT_SPEC: dict[str, dict[str, t.Any]] = {
    "root": {"type": "path", "required": True},
    "version": {"type": "str"},
    "state": {
        "type": "str",
        "default": "present",
        "choices": ["present", "staged", "absent", "rolled_back", "marked_bad"],
    },
    "src": {"type": "path"},
    "url": {"type": "str"},
    "checksum": {"type": "str"},
    "validate_certs": {"type": "bool", "default": True},
    "keep": {"type": "int", "default": 5},
    "max_unpacked_size": {"type": "bytes"},
    "force": {"type": "bool", "default": False},
    "reason": {"type": "str"},
    "restart_command": {"type": "raw"},
    "restart_when": {"type": "str", "default": "changed", "choices": ["changed", "always"]},
}
SPEC_CONSTRAINTS: dict[str, t.Any] = {
    "required_if": [
        ("state", "present", ("version",)),
        ("state", "present", ("src", "url"), True),
        ("state", "staged", ("version",)),
        ("state", "staged", ("src", "url"), True),
        ("state", "absent", ("version",)),
        ("state", "marked_bad", ("version",)),
    ],
    "mutually_exclusive": [("src", "url")],
    "required_by": {"url": "checksum"},
}


def apply_release(
    params: dict[str, t.Any], check_mode: bool, diff: bool, run_command: RunCommand | None = None
) -> dict[str, t.Any]:
    """Bring the releases to the requested state; a restart command runs through ``run_command``."""
    manager = ReleaseManager(
        params["root"],
        check_mode=check_mode,
        download=OpenUrlDownload(params["validate_certs"]),
        run_command=run_command,
        max_unpacked_size=params["max_unpacked_size"],
    )
    restart = Restart.parse(params["restart_command"], always=params["restart_when"] == "always")
    state = params["state"]
    if state in ("present", "staged"):
        source = ReleaseSource(src=params["src"], url=params["url"], checksum=params["checksum"])
        result = manager.deploy(
            params["version"],
            source,
            keep=params["keep"],
            force=params["force"],
            make_current=state == "present",
            restart=restart,
        )
    elif state == "rolled_back":
        result = manager.rollback(params["version"], force=params["force"], restart=restart)
    elif state == "absent":
        result = manager.remove(params["version"])
    else:
        result = manager.mark_bad(params["version"], reason=params["reason"])
    if not diff:
        result.pop("diff")
    return result


TASK = TaskInterface(
    "fleet.rollout.release", ARGUMENT_SPEC, apply_release, SPEC_CONSTRAINTS, runs_commands=True
)
