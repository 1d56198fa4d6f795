# Copyright: fleet.rollout developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The filter fleet.rollout.balancer_calls: deploy_balancers grouped into one lb_member call per host."""

from __future__ import annotations

import typing as t

from ansible.errors import AnsibleFilterError

CONTROLLER = "localhost"
KNOWN_KEYS = frozenset({"name", "socket", "host", "backends", "server_state_file"})


def balancer_calls(balancers: t.Any) -> list[dict[str, t.Any]]:
    """Group balancers by the host their sockets are reached from, keeping the first-seen order."""
    if not isinstance(balancers, list):
        raise AnsibleFilterError(f"balancers must be a list of dicts, got {type(balancers).__name__}")
    calls: dict[str, dict[str, t.Any]] = {}
    for index, balancer in enumerate(balancers):
        if not isinstance(balancer, dict) or not isinstance(balancer.get("socket"), str):
            raise AnsibleFilterError(f"balancer #{index} needs a 'socket' string, got {balancer!r}")
        unknown = sorted(set(balancer) - KNOWN_KEYS)
        if unknown:
            known = sorted(KNOWN_KEYS)
            raise AnsibleFilterError(f"balancer #{index} has unknown keys {unknown}; known: {known}")
        host = balancer.get("host") or CONTROLLER
        call = calls.setdefault(host, {"host": host, "sockets": [], "backends": []})
        if balancer["socket"] not in call["sockets"]:  # several targets' lists name the same balancer
            call["sockets"].append(balancer["socket"])
        if balancer.get("server_state_file"):
            call.setdefault("state_files", {})[balancer["socket"]] = balancer["server_state_file"]
        for backend in balancer.get("backends") or []:
            if backend not in call["backends"]:
                call["backends"].append(backend)
    return list(calls.values())


class FilterModule:
    def filters(self) -> dict[str, t.Callable[..., t.Any]]:
        return {"balancer_calls": balancer_calls}
