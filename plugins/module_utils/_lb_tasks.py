# Private to this collection: not a public API, may change without notice.
"""The task interfaces of lb_member and lb_member_info: argument specs and runners.

The modules and their controller-side action plugins both use these, so a task behaves the same
whether it runs on the target or inside the controller.
"""

from __future__ import annotations

import dataclasses
import os
import typing as t

from ansible_collections.fleet.rollout.plugins.module_utils._balancer import (
    BalancerMember,
)
from ansible_collections.fleet.rollout.plugins.module_utils._errors import InvalidInputError
from ansible_collections.fleet.rollout.plugins.module_utils._haproxy import RuntimeApiClient
from ansible_collections.fleet.rollout.plugins.module_utils._member import MemberRequest
from ansible_collections.fleet.rollout.plugins.module_utils._member_report import MemberReport
from ansible_collections.fleet.rollout.plugins.module_utils._task_interface import TaskInterface
from ansible_collections.fleet.rollout.plugins.module_utils._validate import first_control_character

MEMBER_ARGUMENT_SPEC: dict[str, dict[str, t.Any]] = {
    "socket": {"type": "list", "elements": "str", "required": True},
    "server": {"type": "str", "required": True},
    "backends": {"type": "list", "elements": "str"},
    "state": {"type": "str", "choices": ["enabled", "drained", "maintenance"]},
    "weight": {"type": "raw"},
    "drain_to": {"type": "str", "choices": ["drain", "maint"], "default": "drain"},
    "drain_timeout": {"type": "float", "default": 60},
    "shutdown_sessions": {"type": "bool", "default": False},
    "up_timeout": {"type": "float", "default": 60},
    "check_before_traffic": {"type": "bool", "default": True},
    "min_healthy": {"type": "raw"},
    "capacity_timeout": {"type": "float", "default": 60},
    "timeout": {"type": "float", "default": 5},
    "poll_interval": {"type": "float", "default": 0.2},
    "server_state_files": {"type": "dict", "default": {}},
    "hold": {"type": "float", "default": 0},
}
MEMBER_SPEC_CONSTRAINTS: dict[str, t.Any] = {"required_one_of": [("state", "weight")]}

INFO_ARGUMENT_SPEC: dict[str, dict[str, t.Any]] = {
    "socket": {"type": "list", "elements": "str", "required": True},
    "backends": {"type": "list", "elements": "str"},
    "servers": {"type": "list", "elements": "str"},
    "timeout": {"type": "float", "default": 5},
}


def clients(params: dict[str, t.Any]) -> list[RuntimeApiClient]:
    return [RuntimeApiClient(address, timeout=params["timeout"]) for address in params["socket"]]


def server_state_files(params: dict[str, t.Any]) -> dict[str, str]:
    """server_state_files: for some of the sockets, the balancer's server-state-file (an absolute path)."""
    files = params["server_state_files"] or {}
    strangers = sorted(set(files) - set(params["socket"]))
    if strangers:
        raise InvalidInputError(f"server_state_files names sockets that are not in socket: {strangers}")
    for socket, path in files.items():
        if not isinstance(path, str) or not os.path.isabs(path) or first_control_character(path) is not None:
            raise InvalidInputError(f"server_state_files[{socket!r}] must be an absolute path, got {path!r}")
    return dict(files)


def apply_member(params: dict[str, t.Any], check_mode: bool, diff: bool) -> dict[str, t.Any]:
    """lb_member: bring one server to the requested state on every balancer and confirm it."""
    # every option but backends (a list to the module, a tuple to the request) has its field
    fields = [name.name for name in dataclasses.fields(MemberRequest) if name.name != "backends"]
    request = MemberRequest(
        backends=tuple(params["backends"] or ()), **{name: params[name] for name in fields}
    )
    state_files = server_state_files(params)
    result = BalancerMember(clients(params), request, check_mode=check_mode, state_files=state_files).apply()
    if not diff:
        result.pop("diff", None)
    return result


def report_members(
    params: dict[str, t.Any], check_mode: bool = False, diff: bool = False
) -> dict[str, t.Any]:
    """lb_member_info: every server of every (or the given) backend, as each balancer sees it."""
    servers = MemberReport(clients(params), params["backends"] or (), params["servers"] or ()).collect()
    return {"changed": False, "servers": servers}


MEMBER_TASK = TaskInterface(
    "fleet.rollout.lb_member", MEMBER_ARGUMENT_SPEC, apply_member, MEMBER_SPEC_CONSTRAINTS
)
INFO_TASK = TaskInterface("fleet.rollout.lb_member_info", INFO_ARGUMENT_SPEC, report_members)
