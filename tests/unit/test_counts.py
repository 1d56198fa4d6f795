"""The one reading of "N or N%" that windows, budgets, capacity floors and weights share."""

from __future__ import annotations

import pytest
from ansible_collections.fleet.rollout.plugins.module_utils._counts import CountOrPercent
from ansible_collections.fleet.rollout.plugins.module_utils._errors import InvalidInputError
from ansible_collections.fleet.rollout.plugins.module_utils._haproxy import Weight
from ansible_collections.fleet.rollout.plugins.module_utils._member import CapacityFloor
from ansible_collections.fleet.rollout.plugins.plugin_utils._rolling_options import (
    RolloutOptionError,
    parse_host_count,
)


@pytest.mark.parametrize(
    ("raw", "read"),
    [(3, (3, False)), ("3", (3, False)), (" 25 % ", (25, True)), ("0%", (0, True)), (0, (0, False))],
)
def test_counts_and_percentages_are_read_alike(raw: object, read: tuple[int, bool]) -> None:
    count = CountOrPercent.read(raw)
    assert count is not None and (count.value, count.percent) == read


@pytest.mark.parametrize("raw", [True, -1, "-1", "²", "٣", "3.5", "", "%", None, [3]])
def test_anything_else_is_not_a_count(raw: object) -> None:
    assert CountOrPercent.read(raw) is None


@pytest.mark.parametrize("raw", ["²", "٣"])
def test_every_user_refuses_other_digits_with_its_own_message(raw: str) -> None:
    with pytest.raises(RolloutOptionError, match="rollout_window must be"):
        parse_host_count("rollout_window", raw, minimum=1)
    with pytest.raises(InvalidInputError, match="min_healthy"):
        CapacityFloor.parse(raw)
    with pytest.raises(InvalidInputError, match="weight"):
        Weight.parse(raw)


def test_shares_round_down_unless_asked_to_round_up() -> None:
    assert CountOrPercent(75, True).share_of(3) == 2
    assert CountOrPercent(75, True).share_of(3, round_up=True) == 3
    assert CountOrPercent(2, False).share_of(100) == 2
