"""The one polling loop: when it looks again, and when it gives up."""

from __future__ import annotations

from collections.abc import Callable

from ansible_collections.fleet.rollout.plugins.module_utils._poll import poll_until

from tests.fakes.clock import FakeClock


def attempts_until(clock: FakeClock, done_at: float | None) -> tuple[list[float], Callable[[], bool]]:
    seen: list[float] = []

    def attempt() -> bool:
        seen.append(clock.now)
        return done_at is not None and clock.now >= done_at

    return seen, attempt


def test_it_looks_at_once_and_stops_when_the_condition_holds() -> None:
    clock = FakeClock(0.0)
    seen, attempt = attempts_until(clock, done_at=1.0)
    assert poll_until(attempt, 10.0, 0.5, clock, clock.sleep) is True
    assert seen == [0.0, 0.5, 1.0]


def test_by_default_one_last_look_happens_at_the_deadline() -> None:
    clock = FakeClock(0.0)
    seen, attempt = attempts_until(clock, done_at=None)
    assert poll_until(attempt, 2.0, 0.5, clock, clock.sleep) is False
    assert seen == [0.0, 0.5, 1.0, 1.5, 2.0]


def test_within_the_deadline_no_look_starts_at_or_after_it() -> None:
    clock = FakeClock(0.0)
    seen, attempt = attempts_until(clock, done_at=None)
    assert poll_until(attempt, 2.0, 0.5, clock, clock.sleep, within_deadline=True) is False
    assert seen == [0.0, 0.5, 1.0, 1.5]  # a sleep after 1.5 would end at the deadline: no look at 2.0


def test_overtime_keeps_looking_past_the_deadline_while_it_says_so() -> None:
    clock = FakeClock(0.0)
    seen, attempt = attempts_until(clock, done_at=2.5)
    assert poll_until(attempt, 2.0, 0.5, clock, clock.sleep, overtime=lambda: clock.now < 3) is True
    assert seen[-1] == 2.5


def test_landing_on_the_deadline_cuts_the_last_sleep_short() -> None:
    clock = FakeClock(0.0)
    seen, attempt = attempts_until(clock, done_at=None)
    assert poll_until(attempt, 1.2, 0.5, clock, clock.sleep, land_on_deadline=True) is False
    assert seen == [0.0, 0.5, 1.0, 1.2]
    assert round(clock.sleeps[-1], 6) == 0.2
