# Copyright: fleet.rollout developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters the deploy and rollback playbooks plan a rollout with: preflight's checks, the failure budget,
the window as ``serial`` takes it."""

from __future__ import annotations

import typing as t
from collections.abc import Iterable, Mapping

from ansible.errors import AnsibleFilterError
from ansible.parsing.dataloader import DataLoader
from ansible.utils.vars import load_extra_vars
from ansible_collections.fleet.rollout.plugins.plugin_utils._rolling_options import (
    CANARY,
    CANARY_WAVE,
    DEFAULTS,
    RolloutOptionError,
    parse_host_count,
    parse_options,
)
from ansible_collections.fleet.rollout.plugins.plugin_utils._rolling_options import (
    window_serial as _window_serial,
)

# Read by play keywords (hosts, strategy, serial) or by the strategy, which see play variables and extra
# variables only: set on a host (inventory, group_vars, host_vars, a fact) they would be ignored.
PLAY_SETTINGS = (*DEFAULTS, "rollout_strategy", "deploy_target", "rollout_journal_dir")


def host_count(value: t.Any, total_hosts: int, name: str = "rollout_max_failures") -> int:
    """A count of hosts, or a percentage of ``total_hosts`` rounded down (as the rolling strategy does)."""
    try:
        return parse_host_count(name, value, minimum=0).of(int(total_hosts), at_least_one=False)
    except RolloutOptionError as error:
        raise AnsibleFilterError(str(error)) from error


def canary_hosts(hosts: t.Any, canary: t.Any = 1, wave: t.Any = True) -> list[str]:
    """The hosts of a play's canary wave: its first ``canary`` hosts (a count or a percentage), as the
    rolling strategy counts them; none when ``wave`` is false."""
    if not isinstance(hosts, list):
        raise AnsibleFilterError(f"canary_hosts needs the list of the play's hosts, got {hosts!r}")
    try:
        options = parse_options({CANARY: canary, CANARY_WAVE: wave})
    except RolloutOptionError as error:
        raise AnsibleFilterError(str(error)) from error
    return [str(host) for host in hosts[: options.resolve(len(hosts)).canary]]


def window_serial(value: t.Any) -> t.Any:
    """``rollout_window`` for the play keyword ``serial`` (``-e rollout_strategy=linear``): a list, or text
    that spells one (``-e rollout_window=[1,3]``), as the list of counts and percentages it holds, each
    checked; a single count or percentage as it is."""
    try:
        return _window_serial(value)
    except RolloutOptionError as error:
        raise AnsibleFilterError(str(error)) from error


def missing_servers(balancers: t.Any, seen: t.Any, server: str) -> list[str]:
    """Where ``server`` is not a member: ``<socket>`` of a balancer without it, or ``<socket> backend <b>``
    for a backend that a balancer names and that does not hold it. ``seen`` is lb_member_info's servers."""
    if not isinstance(balancers, list) or not isinstance(seen, list):
        raise AnsibleFilterError("missing_servers needs the list of balancers and the list of servers seen")
    members: dict[str, set[str]] = {}
    for row in seen:
        if isinstance(row, Mapping) and row.get("server") == server:
            members.setdefault(str(row.get("balancer")), set()).add(str(row.get("backend")))
    missing: list[str] = []
    for balancer in balancers:
        socket = str(balancer.get("socket")) if isinstance(balancer, Mapping) else str(balancer)
        backends = (balancer.get("backends") if isinstance(balancer, Mapping) else None) or []
        found = members.get(socket, set())
        if not found:
            missing.append(socket)
        missing += [f"{socket} backend {backend}" for backend in backends if backend not in found]
    return missing


def misplaced_settings(hosts: Iterable[str], hostvars: t.Any) -> list[str]:
    """One line per play setting that the hosts' own variables set (and an extra variable does not), where
    the plays cannot see it."""
    extra_vars = load_extra_vars(DataLoader())
    lines = []
    for name in PLAY_SETTINGS:
        if name in extra_vars:
            continue  # an extra variable is seen by the play and wins over the host's
        holders = [host for host in hosts if name in hostvars[host]]
        if holders:
            shown = ", ".join(holders[:5]) + (f" and {len(holders) - 5} more" if len(holders) > 5 else "")
            lines.append(f"{name} (set on {shown})")
    return lines


def any_host_without(hosts: Iterable[str], hostvars: t.Any, name: str) -> bool:
    """Whether any of the hosts lacks the variable ``name``, looked for from the last host back: each look
    costs a host's whole variables, and the deploy role asks this of hosts yet to start, which start in
    the play's order, so while one is left it is found at once (at hundreds of hosts a full pass per host
    costs more than the host's own tasks)."""
    return any(name not in hostvars[host] for host in reversed(list(hosts)))


class FilterModule:
    def filters(self) -> dict[str, t.Callable[..., t.Any]]:
        return {
            "any_host_without": any_host_without,
            "canary_hosts": canary_hosts,
            "host_count": host_count,
            "missing_servers": missing_servers,
            "misplaced_settings": misplaced_settings,
            "window_serial": window_serial,
        }
