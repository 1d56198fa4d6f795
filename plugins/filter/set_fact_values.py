# Copyright: fleet.rollout developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The value ``set_fact`` gave one variable on each of some hosts, without each host's whole variables."""

from __future__ import annotations

import typing as t
from collections.abc import Iterable

from ansible_collections.fleet.rollout.plugins.plugin_utils._core_access import set_facts_of


def set_fact_values(hosts: Iterable[str], hostvars: t.Any, name: str) -> list[t.Any]:
    """The value of the fact ``name`` of each of the hosts that has one, in the hosts' order. A look at
    ``hostvars[host]`` builds that host's whole variables, so a pass over every host of the play for each
    host's turn (the deploy role's gate reads every host's analysis mark) grows with the square of the
    hosts; the facts themselves are one dictionary read away."""
    found = []
    for host in hosts:
        facts = set_facts_of(hostvars, host)
        if facts is None:  # this ansible-core keeps them elsewhere: the public path
            variables = hostvars[host]
            if name in variables:
                found.append(variables[name])
        elif name in facts:
            found.append(facts[name])
    return found


class FilterModule:
    def filters(self) -> dict[str, t.Callable[..., t.Any]]:
        return {"set_fact_values": set_fact_values}
