"""A clock for code that takes its clock and sleep as arguments: time moves only when it sleeps (or a
fake it drives moves ``now`` itself), and every sleep is recorded."""

from __future__ import annotations


class FakeClock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
