# Copyright (c) fleet.rollout developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Options of the fleet.rollout.rolling strategy: parsing, validation, and counts from percentages.

Pure Python with no Ansible imports, so it is unit-tested on its own. Values arrive templated: ints
from YAML or native Jinja, strings such as ``"4"`` or ``"25%"`` from ``-e`` or older ansible-core.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

WINDOW = "rollout_window"
CANARY = "rollout_canary"
CANARY_PAUSE = "rollout_canary_pause"
MAX_FAILURES = "rollout_max_failures"
# A play that must never have a canary wave (a revert) sets this false; `-e rollout_canary=N` would
# override a play's own rollout_canary, since extra vars win.
CANARY_WAVE = "rollout_canary_wave"

DEFAULTS: Mapping[str, object] = {WINDOW: 1, CANARY: 1, CANARY_PAUSE: 0, MAX_FAILURES: 0, CANARY_WAVE: True}
_TRUE, _FALSE = {"true", "yes", "on", "1"}, {"false", "no", "off", "0"}

_COUNT_OR_PERCENT = re.compile(r"\s*(\d+)\s*(%?)\s*")


class RolloutOptionError(ValueError):
    """A rollout option has a value the strategy cannot use; the message names the option and value."""


@dataclass(frozen=True)
class HostCount:
    """A number of hosts, given as a count or as a percentage of the rollout's target hosts."""

    value: int
    percent: bool

    def of(self, total_hosts: int, *, at_least_one: bool) -> int:
        """The count for a rollout of ``total_hosts``. Percentages round down, as ``serial`` does;
        ``at_least_one`` keeps a non-zero percentage of a small fleet from rounding to no host."""
        if not self.percent:
            return self.value
        count = self.value * total_hosts // 100
        if at_least_one and self.value > 0:
            return max(count, 1)
        return count

    def __str__(self) -> str:
        return f"{self.value}%" if self.percent else str(self.value)


@dataclass(frozen=True)
class RolloutLimits:
    """The options resolved to host counts for one play."""

    window: int
    canary: int
    max_failures: int
    canary_pause: float


@dataclass(frozen=True)
class RolloutOptions:
    """The validated options of one play, before the number of target hosts is known."""

    window: HostCount
    canary: HostCount
    max_failures: HostCount
    canary_pause: float

    def resolve(self, total_hosts: int) -> RolloutLimits:
        """Counts for ``total_hosts`` target hosts (the window is never larger than the fleet)."""
        window = self.window.of(total_hosts, at_least_one=True)
        return RolloutLimits(
            window=max(1, min(window, total_hosts)),
            canary=min(self.canary.of(total_hosts, at_least_one=True), total_hosts),
            max_failures=self.max_failures.of(total_hosts, at_least_one=False),
            canary_pause=self.canary_pause,
        )


def parse_host_count(name: str, raw: object, *, minimum: int) -> HostCount:
    """A whole number of hosts (at least ``minimum``) or a percentage from ``minimum``% to 100%."""
    expected = f"a whole number of hosts (at least {minimum}) or a percentage from {minimum}% to 100%"
    if isinstance(raw, bool):  # bool is an int to Python, never a host count to a user
        raise RolloutOptionError(f"{name} must be {expected}, got {raw!r}")
    if isinstance(raw, int):
        value, percent = raw, False
    elif isinstance(raw, str) and (match := _COUNT_OR_PERCENT.fullmatch(raw)):
        value, percent = int(match.group(1)), bool(match.group(2))
    else:
        raise RolloutOptionError(f"{name} must be {expected}, got {raw!r}")
    if value < minimum or (percent and value > 100):
        raise RolloutOptionError(f"{name} must be {expected}, got {raw!r}")
    return HostCount(value=value, percent=percent)


def parse_seconds(name: str, raw: object) -> float:
    """A finite, non-negative number of seconds."""
    error = RolloutOptionError(f"{name} must be a number of seconds (0 or more), got {raw!r}")
    if isinstance(raw, bool):
        raise error
    if isinstance(raw, int | float):
        seconds = float(raw)
    elif isinstance(raw, str):
        try:
            seconds = float(raw.strip())
        except ValueError:
            raise error from None
    else:
        raise error
    if not math.isfinite(seconds) or seconds < 0:
        raise error
    return seconds


def parse_flag(name: str, raw: object) -> bool:
    """A boolean, or its usual spellings as text (extra vars arrive as strings)."""
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.strip().lower() in _TRUE | _FALSE:
        return raw.strip().lower() in _TRUE
    raise RolloutOptionError(f"{name} must be true or false, got {raw!r}")


def parse_options(values: Mapping[str, object]) -> RolloutOptions:
    """Validate the (templated) rollout variables of a play; absent ones take their defaults."""

    def value_of(name: str) -> object:
        return values.get(name, DEFAULTS[name])

    # In this order, so the first bad option is the one named.
    window = parse_host_count(WINDOW, value_of(WINDOW), minimum=1)
    canary = parse_host_count(CANARY, value_of(CANARY), minimum=0)
    return RolloutOptions(
        window=window,
        canary=canary if parse_flag(CANARY_WAVE, value_of(CANARY_WAVE)) else HostCount(0, percent=False),
        max_failures=parse_host_count(MAX_FAILURES, value_of(MAX_FAILURES), minimum=0),
        canary_pause=parse_seconds(CANARY_PAUSE, value_of(CANARY_PAUSE)),
    )


def serial_is_set(serial: Sequence[object] | None) -> bool:
    """Whether a play's (templated) ``serial`` asks for batches: anything but absent, 0 or 0%."""
    for item in serial or ():
        if isinstance(item, int) and not isinstance(item, bool) and item == 0:
            continue
        if (
            isinstance(item, str)
            and (match := _COUNT_OR_PERCENT.fullmatch(item))
            and int(match.group(1)) == 0
        ):
            continue
        return True
    return False
