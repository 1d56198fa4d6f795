"""The filters of fleet.rollout.rollout_plan: preflight's membership check, play settings in the
inventory, and the failure budget as a count."""

from __future__ import annotations

import pytest
from ansible import context
from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.collections import ImmutableDict
from ansible_collections.fleet.rollout.plugins.filter.rollout_plan import (
    any_host_without,
    canary_hosts,
    host_count,
    misplaced_settings,
    missing_servers,
    window_serial,
)
from ansible_collections.fleet.rollout.plugins.filter.set_fact_values import set_fact_values

SEEN = [
    {"balancer": "/run/lb1.sock", "backend": "app", "server": "app01"},
    {"balancer": "/run/lb1.sock", "backend": "api", "server": "app02"},
    {"balancer": "/run/lb2.sock", "backend": "app", "server": "app02"},
]


@pytest.mark.parametrize(
    ("balancers", "server", "missing"),
    [
        ([{"socket": "/run/lb1.sock"}], "app01", []),
        ([{"socket": "/run/lb1.sock", "backends": ["app"]}], "app01", []),
        ([{"socket": "/run/lb1.sock", "backends": ["nope"]}], "app01", ["/run/lb1.sock backend nope"]),
        ([{"socket": "/run/lb2.sock"}], "app01", ["/run/lb2.sock"]),
        ([{"socket": "/run/lb1.sock", "backends": ["api", "app"]}], "app02", ["/run/lb1.sock backend app"]),
        ([], "app01", []),
    ],
)
def test_missing_servers_names_each_balancer_and_backend_without_the_server(
    balancers: list[dict[str, object]], server: str, missing: list[str]
) -> None:
    assert missing_servers(balancers, SEEN, server) == missing


def test_missing_servers_refuses_what_is_not_a_list() -> None:
    with pytest.raises(AnsibleFilterError, match="list of balancers"):
        missing_servers({"socket": "/run/lb1.sock"}, SEEN, "app01")


@pytest.mark.parametrize(
    ("value", "total", "count"), [(0, 10, 0), (2, 10, 2), ("3", 10, 3), ("25%", 10, 2), ("5%", 10, 0)]
)
def test_host_count_resolves_counts_and_percentages(value: object, total: int, count: int) -> None:
    assert host_count(value, total) == count


def test_host_count_names_a_bad_value() -> None:
    with pytest.raises(AnsibleFilterError, match=r"rollout_max_failures must be .* got 'many'"):
        host_count("many", 10)


@pytest.mark.parametrize(
    ("value", "serial"),
    [([1, 3, "25%"], [1, 3, "25%"]), ("[1,3]", [1, 3]), (2, 2), ("2", "2"), ("50%", "50%")],
)
def test_window_serial_gives_serial_a_list_or_the_single_value(value: object, serial: object) -> None:
    assert window_serial(value) == serial


def test_window_serial_names_a_bad_item() -> None:
    with pytest.raises(AnsibleFilterError, match=r"^rollout_window item 2 must be .* got 0, in \[1, 0\]$"):
        window_serial([1, 0])


def test_misplaced_settings_names_play_settings_on_hosts_unless_an_extra_var_sets_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hostvars = {
        "app01": {"rollout_window": 3, "deploy_version": "v2"},
        "app02": {"rollout_window": 3, "rollout_strategy": "linear"},
        "app03": {},
    }
    monkeypatch.setattr(context, "CLIARGS", ImmutableDict(extra_vars=()))
    assert misplaced_settings(["app01", "app02", "app03"], hostvars) == [
        "rollout_window (set on app01, app02)",
        "rollout_strategy (set on app02)",
    ]
    # -e rollout_window=3 is in every host's variables too, and is where it belongs
    monkeypatch.setattr(context, "CLIARGS", ImmutableDict(extra_vars=("rollout_window=3",)))
    assert misplaced_settings(["app01", "app02", "app03"], hostvars) == ["rollout_strategy (set on app02)"]


HOSTS = [f"app{n:02}" for n in range(1, 11)]


@pytest.mark.parametrize(
    ("canary", "wave", "expected"),
    [
        (1, True, ["app01"]),
        ("2", True, ["app01", "app02"]),
        ("10%", True, ["app01"]),
        ("1%", True, ["app01"]),
        (0, True, []),
        (3, False, []),
        (3, "false", []),
        (20, True, HOSTS),
    ],
)
def test_canary_hosts_are_the_first_of_the_play_as_the_strategy_counts_them(
    canary: object, wave: object, expected: list[str]
) -> None:
    assert canary_hosts(HOSTS, canary, wave) == expected


def test_canary_hosts_refuses_a_bad_count_naming_it() -> None:
    with pytest.raises(AnsibleFilterError, match=r"rollout_canary must be .* got 'many'"):
        canary_hosts(HOSTS, "many")


class CountedHostVars(dict[str, dict[str, object]]):
    """hostvars as a filter sees it, counting the hosts looked at (each costs a host's whole variables)."""

    def __init__(self, hosts: dict[str, dict[str, object]]) -> None:
        super().__init__(hosts)
        self.looked_at: list[str] = []

    def __getitem__(self, host: str) -> dict[str, object]:
        self.looked_at.append(host)
        return super().__getitem__(host)


def test_any_host_without_a_variable_looks_from_the_last_host_and_stops_at_the_first_found() -> None:
    started: dict[str, object] = {"deploy_cycle_started_at": 1.0}
    hostvars = CountedHostVars({f"app{n}": dict(started) if n <= 7 else {} for n in range(1, 11)})
    hosts = [f"app{n}" for n in range(1, 11)]
    assert any_host_without(hosts, hostvars, "deploy_cycle_started_at")
    assert hostvars.looked_at == ["app10"]
    for host in hosts:
        hostvars[host].update(started)
    hostvars.looked_at.clear()
    assert not any_host_without(hosts, hostvars, "deploy_cycle_started_at")
    assert hostvars.looked_at == list(reversed(hosts))
    assert not any_host_without([], hostvars, "deploy_cycle_started_at")


class VariableManagerLike:
    def __init__(self, facts: dict[str, dict[str, object]]) -> None:
        self._nonpersistent_fact_cache = facts


class HostVarsWithFacts(CountedHostVars):
    """hostvars as ansible-core's: the variable manager behind it keeps what set_fact gave each host."""

    def __init__(self, hosts: dict[str, dict[str, object]], facts: dict[str, dict[str, object]]) -> None:
        super().__init__(hosts)
        self._variable_manager = VariableManagerLike(facts)


def test_set_fact_values_reads_the_facts_without_each_hosts_variables() -> None:
    marks = {"app1": {"version": "v2"}, "app3": {"version": "v1"}}
    hostvars = HostVarsWithFacts(
        {f"app{n}": {"inventory_only": n} for n in range(1, 4)},
        {host: {"deploy_analysis_mark": mark} for host, mark in marks.items()},
    )
    hosts = ["app1", "app2", "app3"]
    assert set_fact_values(hosts, hostvars, "deploy_analysis_mark") == [{"version": "v2"}, {"version": "v1"}]
    assert set_fact_values(hosts, hostvars, "inventory_only") == []  # set_fact's facts only
    assert hostvars.looked_at == []


def test_set_fact_values_falls_back_to_hostvars_where_the_facts_are_kept_elsewhere() -> None:
    hostvars = CountedHostVars({"app1": {"deploy_analysis_mark": {"version": "v2"}}, "app2": {}})
    assert set_fact_values(["app1", "app2"], hostvars, "deploy_analysis_mark") == [{"version": "v2"}]
    assert hostvars.looked_at == ["app1", "app2"]
