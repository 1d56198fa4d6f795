"""The filter fleet.rollout.balancer_calls."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.fleet.rollout.plugins.filter.balancer_calls import balancer_calls


def test_one_call_per_host_in_first_seen_order() -> None:
    balancers = [
        {"name": "lb1", "socket": "/run/lb1.sock", "backends": ["app"]},
        {"socket": "tcp://127.0.0.1:9999", "host": "lb2"},
        {"socket": "/run/lb3.sock", "backends": ["app", "api"]},
    ]
    assert balancer_calls(balancers) == [
        {"host": "localhost", "sockets": ["/run/lb1.sock", "/run/lb3.sock"], "backends": ["app", "api"]},
        {"host": "lb2", "sockets": ["tcp://127.0.0.1:9999"], "backends": []},
    ]


def test_a_balancer_named_twice_is_called_once() -> None:
    """The preflight puts every target's list together: each balancer is read once."""
    one = [{"socket": "/run/lb1.sock", "backends": ["app"]}, {"socket": "/run/lb2.sock"}]
    assert balancer_calls(one + one) == [
        {"host": "localhost", "sockets": ["/run/lb1.sock", "/run/lb2.sock"], "backends": ["app"]},
    ]


@pytest.mark.parametrize(
    ("balancers", "named"),
    [
        ({"socket": "/run/lb.sock"}, "list of dicts"),
        (["/run/lb.sock"], "balancer #0 needs a 'socket'"),
        ([{"socket": "/a"}, {"sockett": "/b"}], "balancer #1 needs a 'socket'"),
        ([{"socket": "/a", "weight": 3}], "unknown keys ['weight']"),
    ],
)
def test_bad_balancers_are_refused_by_name(balancers: object, named: str) -> None:
    with pytest.raises(AnsibleFilterError, match=named.replace("[", r"\[").replace("]", r"\]")):
        balancer_calls(balancers)


def test_the_server_state_files_go_with_their_sockets() -> None:
    balancers = [
        {"socket": "/run/lb1.sock", "server_state_file": "/var/lib/haproxy/lb1-state"},
        {"socket": "/run/lb2.sock"},
        {"socket": "tcp://127.0.0.1:9999", "host": "lb3", "server_state_file": "/var/lib/haproxy/state"},
    ]
    assert balancer_calls(balancers) == [
        {
            "host": "localhost",
            "sockets": ["/run/lb1.sock", "/run/lb2.sock"],
            "backends": [],
            "state_files": {"/run/lb1.sock": "/var/lib/haproxy/lb1-state"},
        },
        {
            "host": "lb3",
            "sockets": ["tcp://127.0.0.1:9999"],
            "backends": [],
            "state_files": {"tcp://127.0.0.1:9999": "/var/lib/haproxy/state"},
        },
    ]
