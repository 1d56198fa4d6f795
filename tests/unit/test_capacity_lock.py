"""The capacity lock is the HAProxy process's, read again once held (a reload in between starts over)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
from ansible_collections.fleet.rollout.plugins.module_utils._capacity_lock import (
    balancer_key,
    capacity_lock,
)
from ansible_collections.fleet.rollout.plugins.module_utils._errors import ConflictError
from ansible_collections.fleet.rollout.plugins.module_utils._haproxy import RuntimeApiClient


class Reloading(RuntimeApiClient):
    """A balancer whose successive ``show info`` answers come from the pids given."""

    def __init__(self, address: str, pids: Iterator[int | None]) -> None:
        super().__init__(address)
        self.pids = pids

    def process_id(self) -> int | None:
        return next(self.pids)


def test_two_addresses_of_one_process_have_one_key() -> None:
    unix = Reloading("/run/haproxy/admin.sock", itertools.repeat(4242))
    tcp = Reloading("tcp://127.0.0.1:9999", itertools.repeat(4242))
    assert balancer_key(unix) == balancer_key(tcp) == "haproxy pid 4242"


def test_a_balancer_that_does_not_say_its_pid_is_keyed_by_its_address() -> None:
    assert balancer_key(Reloading("tcp://127.0.0.1:9999", itertools.repeat(None))) == (
        "address tcp://127.0.0.1:9999"
    )


def test_a_reload_while_the_lock_was_taken_takes_the_new_process_lock() -> None:
    balancer = Reloading("/run/haproxy/admin.sock", iter([100, 200, 200, 200]))
    with capacity_lock([balancer]):
        pass
    assert list(balancer.pids) == []  # read before and after each of two takes


def test_a_balancer_that_keeps_reloading_fails_the_lock_naming_it() -> None:
    balancer = Reloading("/run/haproxy/admin.sock", itertools.count(100))
    with pytest.raises(ConflictError, match=r"/run/haproxy/admin\.sock"), capacity_lock([balancer]):
        raise AssertionError("held")
