"""Options of the fleet.rollout.rolling strategy: what is accepted, what is refused and how it reads,
how percentages become host counts, and the steps of a window given as a list."""

from __future__ import annotations

import pytest
from ansible_collections.fleet.rollout.plugins.plugin_utils._rolling_options import (
    HostCount,
    RolloutLimits,
    RolloutOptionError,
    WindowStep,
    listed,
    parse_host_count,
    parse_options,
    parse_seconds,
    parse_window,
    serial_is_set,
    window_serial,
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


# rollout_window as a list: steps


@pytest.mark.parametrize(
    "raw",
    [
        [1, 3, "25%"],
        (1, 3, "25%"),
        ["1", " 3 ", "25%"],
        "[1, 3, 25%]",  # -e rollout_window=[1,3,25%]
        '[1, 3, "25%"]',  # JSON
        " [1,3,'25%'] ",
    ],
)
def test_window_accepts_a_list_or_text_that_spells_one(raw: object) -> None:
    assert parse_window("rollout_window", raw) == (
        HostCount(1, percent=False),
        HostCount(3, percent=False),
        HostCount(25, percent=True),
    )


@pytest.mark.parametrize(("raw", "expected"), [(4, (4, False)), ("25%", (25, True)), ([2], (2, False))])
def test_a_single_value_or_a_list_of_one_is_one_window(raw: object, expected: tuple[int, bool]) -> None:
    options = parse_options({"rollout_window": raw})
    assert (options.steps, options.window) == ((), HostCount(*expected))
    assert options.resolve(12).steps == ()


MUST = "must be a whole number of hosts (at least 1) or a percentage from 1% to 100%"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([], f"rollout_window {MUST}, or a non-empty list of them, got []"),
        ("[]", f"rollout_window {MUST}, or a non-empty list of them, got '[]'"),
        ([1, 0, "25%"], f"rollout_window item 2 {MUST}, got 0, in [1, 0, '25%']"),
        ("[1,150%]", f"rollout_window item 2 {MUST}, got '150%', in '[1,150%]'"),
        (["three"], f"rollout_window item 1 {MUST}, got 'three', in ['three']"),
        ([1, [2, 3]], f"rollout_window item 2 {MUST}, got [2, 3], in [1, [2, 3]]"),
        ("[[1], 2]", f"rollout_window item 1 {MUST}, got [1], in '[[1], 2]'"),
        ([1, True], f"rollout_window item 2 {MUST}, got True, in [1, True]"),
        ([1, 2.5], f"rollout_window item 2 {MUST}, got 2.5, in [1, 2.5]"),
        ([-1], f"rollout_window item 1 {MUST}, got -1, in [-1]"),
        ("[1, 3", "rollout_window must be a list such as [1, 3, 25%], got '[1, 3'"),
        ({"a": 1}, f"rollout_window {MUST}, got {{'a': 1}}"),
    ],
)
def test_window_refuses_a_bad_list_naming_the_item(raw: object, message: str) -> None:
    with pytest.raises(RolloutOptionError) as caught:
        parse_options({"rollout_window": raw})
    assert str(caught.value) == message


def test_a_bad_list_is_named_before_the_other_options() -> None:
    with pytest.raises(RolloutOptionError, match=r"^rollout_window item 1 .* got 0, in \[0\]$"):
        parse_options({"rollout_window": [0], "rollout_canary": "x"})


def test_listed_reads_only_text_that_looks_like_a_list() -> None:
    assert listed("rollout_window", "[1, 3, 25%]") == [1, 3, "25%"]
    assert listed("rollout_window", "3") == "3"
    assert listed("rollout_window", [1]) == [1]
    assert listed("rollout_window", 4) == 4


def test_list_items_resolve_as_single_values_do() -> None:
    # percentages of the target hosts, rounded down, at least one host, never more than the fleet
    limits = parse_options({"rollout_window": ["5%", "25%", 50, "50%"]}).resolve(12)
    assert limits.steps == (WindowStep(1, 1), WindowStep(3, 3), WindowStep(12, 12))
    assert limits.window == 6


def test_the_example_of_the_docs() -> None:
    # 10 hosts, canary 1, window [1, 3, "50%"]: canary app01; app02 alone; app03-app05 together;
    # then app06-app10 in a sliding window of 5
    limits = parse_options({"rollout_window": [1, 3, "50%"], "rollout_canary": 1}).resolve(10)
    assert limits == RolloutLimits(
        window=5, canary=1, max_failures=0, canary_pause=0.0, steps=(WindowStep(1, 1), WindowStep(3, 3))
    )
    steps = [limits.step_of(taken) for taken in range(10)]
    assert steps == [0, 1, 2, 2, 2, 3, 3, 3, 3, 3]
    assert [limits.window_of(step) for step in range(4)] == [1, 1, 3, 5]
    assert limits.windows() == (1, 3, 5)
    assert limits.last_step == 3
    assert limits.describe_window() == "1, 3, then 5"


def test_steps_start_at_the_first_host_without_a_canary_wave() -> None:
    limits = parse_options({"rollout_window": "[2, 4]", "rollout_canary": 0}).resolve(10)
    assert [limits.step_of(taken) for taken in range(10)] == [1, 1, 2, 2, 2, 2, 2, 2, 2, 2]
    assert [limits.window_of(limits.step_of(taken)) for taken in range(10)] == [2, 2] + [4] * 8


def test_the_canary_wave_runs_in_the_window_of_the_first_step() -> None:
    limits = parse_options({"rollout_window": [2, 5], "rollout_canary": 3}).resolve(10)
    assert [limits.step_of(taken) for taken in range(7)] == [0, 0, 0, 1, 1, 2, 2]
    assert limits.window_of(0) == 2


def test_a_single_window_is_one_step_after_the_canary_wave() -> None:
    limits = parse_options({"rollout_window": 4, "rollout_canary": 2}).resolve(10)
    assert [limits.step_of(taken) for taken in range(5)] == [0, 0, 1, 1, 1]
    assert (limits.window_of(0), limits.window_of(1), limits.last_step, limits.windows()) == (4, 4, 1, (4,))
    assert limits.describe_window() == "4"


def test_steps_beyond_the_fleet_are_never_reached() -> None:
    limits = parse_options({"rollout_window": [1, 1, 1, 1], "rollout_canary": 1}).resolve(3)
    assert [limits.step_of(taken) for taken in range(3)] == [0, 1, 2]


def test_forks_narrow_each_step_but_not_its_hosts() -> None:
    limits = parse_options({"rollout_window": [1, 3, 6]}).resolve(12).narrowed(2)
    assert limits.steps == (WindowStep(1, 1), WindowStep(3, 2))
    assert limits.windows() == (1, 2, 2)
    assert [limits.step_of(taken) for taken in range(1, 6)] == [1, 2, 2, 2, 3]  # step 2 still holds 3 hosts
    assert limits.describe_window() == "1, 3 (2 at a time), then 2"
    single = parse_options({"rollout_window": 5}).resolve(12)
    assert single.narrowed(3) == RolloutLimits(3, 1, 0, 0.0)
    assert single.narrowed(8) == single


@pytest.mark.parametrize(
    ("raw", "serial"),
    [
        ([1, 3, "25%"], [1, 3, "25%"]),
        ("[1,3,25%]", [1, 3, "25%"]),
        ('["1", " 2 ", "10 %"]', [1, 2, "10%"]),
        (3, 3),  # a single value: as it is, as before
        ("3", "3"),
        ("25%", "25%"),
    ],
)
def test_window_serial_is_what_serial_takes(raw: object, serial: object) -> None:
    assert window_serial(raw) == serial


@pytest.mark.parametrize("raw", [[], [1, 0], "[1, 150%]", [[1]], "[x"])
def test_window_serial_refuses_a_bad_list(raw: object) -> None:
    with pytest.raises(RolloutOptionError, match=r"^rollout_window "):
        window_serial(raw)
