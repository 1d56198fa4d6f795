"""Options of the fleet.rollout.rolling strategy: what is accepted, what is refused and how it reads,
and how percentages become host counts."""

from __future__ import annotations

import pytest
from ansible_collections.fleet.rollout.plugins.plugin_utils._rolling_options import (
    HostCount,
    RolloutLimits,
    RolloutOptionError,
    parse_host_count,
    parse_options,
    parse_seconds,
    serial_is_set,
)


def test_defaults_are_one_at_a_time_with_one_canary_and_no_failure_allowed() -> None:
    options = parse_options({})
    assert options.resolve(12) == RolloutLimits(window=1, canary=1, max_failures=0, canary_pause=0.0)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (4, HostCount(4, percent=False)),
        ("4", HostCount(4, percent=False)),
        (" 4 ", HostCount(4, percent=False)),
        ("25%", HostCount(25, percent=True)),
        ("100%", HostCount(100, percent=True)),
        ("1%", HostCount(1, percent=True)),
        (1000, HostCount(1000, percent=False)),
    ],
)
def test_window_accepts_counts_and_percentages(raw: object, expected: HostCount) -> None:
    assert parse_host_count("rollout_window", raw, minimum=1) == expected


@pytest.mark.parametrize(
    "raw", [0, "0", "0%", -1, "-1", "150%", "101%", "abc", "", "2.5", 2.5, True, None, [4], "4 hosts"]
)
def test_window_refuses_what_cannot_be_a_window(raw: object) -> None:
    with pytest.raises(RolloutOptionError) as caught:
        parse_host_count("rollout_window", raw, minimum=1)
    message = str(caught.value)
    assert message.startswith("rollout_window must be a whole number of hosts (at least 1)")
    assert message.endswith(f"got {raw!r}")


@pytest.mark.parametrize(("raw", "count"), [(0, 0), ("0", 0), ("0%", 0), (3, 3), ("50%", 6)])
def test_canary_and_budget_accept_zero(raw: object, count: int) -> None:
    options = parse_options({"rollout_canary": raw, "rollout_max_failures": raw})
    limits = options.resolve(12)
    assert (limits.canary, limits.max_failures) == (count, count)


@pytest.mark.parametrize("name", ["rollout_canary", "rollout_max_failures"])
@pytest.mark.parametrize("raw", [-1, "-2", "150%", "three", 1.5])
def test_canary_and_budget_refuse_bad_values(name: str, raw: object) -> None:
    with pytest.raises(RolloutOptionError, match=f"^{name} must be a whole number of hosts \\(at least 0\\)"):
        parse_options({name: raw})


@pytest.mark.parametrize(
    ("percent", "total", "window", "canary", "max_failures"),
    [
        (25, 12, 3, 3, 3),  # exact
        (30, 12, 3, 3, 3),  # 3.6 rounds down, as serial does
        (10, 12, 1, 1, 1),  # 1.2
        (5, 12, 1, 1, 0),  # 0.6: a window or canary of 5% is still one host; a 5% budget allows none
        (100, 12, 12, 12, 12),
        (50, 1, 1, 1, 0),
    ],
)
def test_percentages_of_the_target_hosts(
    percent: int, total: int, window: int, canary: int, max_failures: int
) -> None:
    value = f"{percent}%"
    options = parse_options({"rollout_window": value, "rollout_canary": value, "rollout_max_failures": value})
    assert options.resolve(total) == RolloutLimits(window, canary, max_failures, 0.0)


def test_counts_larger_than_the_fleet_are_clamped_to_it() -> None:
    options = parse_options({"rollout_window": 50, "rollout_canary": 20, "rollout_max_failures": 99})
    limits = options.resolve(12)
    assert (limits.window, limits.canary, limits.max_failures) == (12, 12, 99)


def test_an_empty_play_still_has_a_window() -> None:
    assert parse_options({"rollout_window": "50%"}).resolve(0).window == 1


@pytest.mark.parametrize(("raw", "seconds"), [(0, 0.0), (30, 30.0), (0.5, 0.5), ("2", 2.0), (" 1.5 ", 1.5)])
def test_canary_pause_is_seconds(raw: object, seconds: float) -> None:
    assert parse_seconds("rollout_canary_pause", raw) == seconds


@pytest.mark.parametrize("raw", [-1, "-0.5", "soon", "nan", "inf", True, None, "30s"])
def test_canary_pause_refuses_what_is_not_a_duration(raw: object) -> None:
    with pytest.raises(RolloutOptionError, match=r"^rollout_canary_pause must be a number of seconds"):
        parse_options({"rollout_canary_pause": raw})


def test_the_first_bad_option_is_named() -> None:
    with pytest.raises(RolloutOptionError, match=r"^rollout_window .* got '150%'$"):
        parse_options({"rollout_window": "150%", "rollout_canary": "x"})


@pytest.mark.parametrize(
    ("serial", "is_set"),
    [(None, False), ([], False), ([0], False), (["0"], False), (["0%"], False), ([4], True), (["25%"], True),
     ([1, 0], True), (["x"], True)],
)  # fmt: skip
def test_serial_counts_as_set_unless_absent_or_zero(serial: list[object] | None, is_set: bool) -> None:
    assert serial_is_set(serial) is is_set


def test_host_count_reads_as_written() -> None:
    assert (str(HostCount(25, percent=True)), str(HostCount(4, percent=False))) == ("25%", "4")


@pytest.mark.parametrize(("raw", "canary"), [(True, 3), ("yes", 3), (False, 0), ("False", 0), ("0", 0)])
def test_a_play_without_a_canary_wave_ignores_rollout_canary(raw: object, canary: int) -> None:
    options = parse_options({"rollout_canary": 3, "rollout_canary_wave": raw})
    assert options.resolve(10).canary == canary


@pytest.mark.parametrize("raw", ["maybe", 2, None])
def test_canary_wave_refuses_what_is_not_a_flag(raw: object) -> None:
    with pytest.raises(RolloutOptionError, match=r"rollout_canary_wave must be true or false, got"):
        parse_options({"rollout_canary_wave": raw})
