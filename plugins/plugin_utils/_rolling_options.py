# Copyright (c) fleet.rollout developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Options of the fleet.rollout.rolling strategy: parsing, validation, and counts from percentages.

Pure Python with no Ansible imports, so it is unit-tested on its own. Values arrive templated: ints
from YAML or native Jinja, strings such as ``"4"`` or ``"25%"`` from ``-e`` or older ansible-core.
``rollout_window`` may also be a list (``[1, 3, "25%"]``, as ``serial`` takes one); ``-e
rollout_window=[1,3]`` gives the text ``"[1,3]"``, read as the list it spells.
"""

from __future__ import annotations

import math
import typing as t
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import yaml
from ansible.module_utils.parsing.convert_bool import boolean
from ansible_collections.fleet.rollout.plugins.module_utils._counts import CountOrPercent

WINDOW = "rollout_window"
CANARY = "rollout_canary"
CANARY_PAUSE = "rollout_canary_pause"
MAX_FAILURES = "rollout_max_failures"
# A play that must never have a canary wave (a revert) sets this false; `-e rollout_canary=N` would
# override a play's own rollout_canary, since extra vars win.
CANARY_WAVE = "rollout_canary_wave"

DEFAULTS: Mapping[str, object] = {WINDOW: 1, CANARY: 1, CANARY_PAUSE: 0, MAX_FAILURES: 0, CANARY_WAVE: True}


class RolloutOptionError(ValueError):
    """A rollout option has a value the strategy cannot use; the message names the option and value."""


class HostCount(CountOrPercent):
    """A number of hosts, given as a count or as a percentage of the rollout's target hosts."""

    def of(self, total_hosts: int, *, at_least_one: bool) -> int:
        """The count for a rollout of ``total_hosts``. Percentages round down, as ``serial`` does;
        ``at_least_one`` keeps a non-zero percentage of a small fleet from rounding to no host."""
        count = self.share_of(total_hosts)
        if self.percent and at_least_one and self.value > 0:
            return max(count, 1)
        return count


@dataclass(frozen=True)
class WindowStep:
    """One step of a list ``rollout_window`` but its last: ``hosts`` hosts, at most ``window`` at a time
    (``hosts`` itself unless ``forks`` narrowed it); the next step waits until all of them finished."""

    hosts: int
    window: int


@dataclass(frozen=True)
class RolloutLimits:
    """The options resolved to host counts for one play.

    Hosts run in steps. Step 0 is the canary wave (``canary`` hosts, none when 0). Then come the
    ``steps`` of a list ``rollout_window`` but its last item (none for a single value), then the step
    of ``window``: a window sliding over every host left. Each step starts only once every host of the
    steps before it finished."""

    window: int
    canary: int
    max_failures: int
    canary_pause: float
    steps: tuple[WindowStep, ...] = ()

    @property
    def last_step(self) -> int:
        """The number of the step of ``window``, the one that holds the rest of the hosts."""
        return len(self.steps) + 1

    def step_of(self, taken: int) -> int:
        """The step of the host that comes after the first ``taken`` hosts of the rollout."""
        position = taken - self.canary
        if position < 0:
            return 0
        for number, step in enumerate(self.steps, start=1):
            if position < step.hosts:
                return number
            position -= step.hosts
        return self.last_step

    def window_of(self, step: int) -> int:
        """How many hosts of ``step`` may run at once. The canary wave has the window of step 1."""
        number = max(step, 1)
        return self.steps[number - 1].window if number <= len(self.steps) else self.window

    def windows(self) -> tuple[int, ...]:
        """The window of every step after the canary wave, in order."""
        return (*(step.window for step in self.steps), self.window)

    def narrowed(self, workers: int) -> RolloutLimits:
        """The same steps, no window wider than ``workers`` (a host in flight needs a worker). A step
        keeps its hosts: it runs them ``workers`` at a time and still waits for all of them."""
        steps = tuple(WindowStep(step.hosts, min(step.window, workers)) for step in self.steps)
        return replace(self, window=min(self.window, workers), steps=steps)

    def describe_window(self) -> str:
        """The window as the strategy's messages show it: ``4``, or ``1, 3 (2 at a time), then 5``."""
        if not self.steps:
            return str(self.window)
        shown = [
            str(s.hosts) if s.hosts == s.window else f"{s.hosts} ({s.window} at a time)" for s in self.steps
        ]
        return f"{', '.join(shown)}, then {self.window}"


@dataclass(frozen=True)
class RolloutOptions:
    """The validated options of one play, before the number of target hosts is known."""

    window: HostCount  # the window, or the last item of a list rollout_window
    canary: HostCount
    max_failures: HostCount
    canary_pause: float
    steps: tuple[HostCount, ...] = ()  # the items of a list rollout_window before its last

    def resolve(self, total_hosts: int) -> RolloutLimits:
        """Counts for ``total_hosts`` target hosts (no window or step is larger than the fleet)."""

        def hosts(count: HostCount) -> int:
            return max(1, min(count.of(total_hosts, at_least_one=True), total_hosts))

        return RolloutLimits(
            window=hosts(self.window),
            canary=min(self.canary.of(total_hosts, at_least_one=True), total_hosts),
            max_failures=self.max_failures.of(total_hosts, at_least_one=False),
            canary_pause=self.canary_pause,
            steps=tuple(WindowStep(hosts(step), hosts(step)) for step in self.steps),
        )


def parse_host_count(name: str, raw: object, *, minimum: int) -> HostCount:
    """A whole number of hosts (at least ``minimum``) or a percentage from ``minimum``% to 100%."""
    expected = f"a whole number of hosts (at least {minimum}) or a percentage from {minimum}% to 100%"
    count = HostCount.read(raw)
    if count is None or count.value < minimum or (count.percent and count.value > 100):
        raise RolloutOptionError(f"{name} must be {expected}, got {raw!r}")
    return t.cast(HostCount, count)


def listed(name: str, raw: object) -> object:
    """``raw``, or the list that text such as ``"[1, 3, 25%]"`` spells in YAML (or JSON): ``-e
    rollout_window=[1,3]`` arrives as text."""
    if not (isinstance(raw, str) and raw.strip().startswith("[")):
        return raw
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        value = None
    if not isinstance(value, list):
        raise RolloutOptionError(f"{name} must be a list such as [1, 3, 25%], got {raw!r}")
    return value


def parse_window(name: str, raw: object) -> tuple[HostCount, ...]:
    """``rollout_window``: a count or a percentage (one item), or a non-empty list of them, given as a
    list or as text that spells one, as ``serial`` takes it."""
    value = listed(name, raw)
    if not isinstance(value, list | tuple):
        return (parse_host_count(name, value, minimum=1),)
    if not value:
        raise RolloutOptionError(
            f"{name} must be a whole number of hosts (at least 1) or a percentage from 1% to 100%, or a "
            f"non-empty list of them, got {raw!r}"
        )
    steps = []
    for number, item in enumerate(value, start=1):
        try:
            steps.append(parse_host_count(f"{name} item {number}", item, minimum=1))
        except RolloutOptionError as error:
            shown = raw if isinstance(raw, str) else list(value)
            raise RolloutOptionError(f"{error}, in {shown!r}") from None
    return tuple(steps)


def window_serial(raw: object) -> object:
    """``rollout_window`` as the play keyword ``serial`` takes it: a list (or text that spells one) as a
    list of counts and percentages, each checked; a single value as it is."""
    value = listed(WINDOW, raw)
    if not isinstance(value, list | tuple):
        return raw
    return [str(step) if step.percent else step.value for step in parse_window(WINDOW, value)]


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
    """A boolean, or any spelling Ansible takes for one (extra vars arrive as strings)."""
    try:
        return bool(boolean(raw, strict=True))
    except TypeError:
        raise RolloutOptionError(f"{name} must be true or false, got {raw!r}") from None


def parse_options(values: Mapping[str, object]) -> RolloutOptions:
    """Validate the (templated) rollout variables of a play; absent ones take their defaults."""

    def value_of(name: str) -> object:
        return values.get(name, DEFAULTS[name])

    # In this order, so the first bad option is the one named.
    *steps, window = parse_window(WINDOW, value_of(WINDOW))
    canary = parse_host_count(CANARY, value_of(CANARY), minimum=0)
    return RolloutOptions(
        window=window,
        canary=canary if parse_flag(CANARY_WAVE, value_of(CANARY_WAVE)) else HostCount(0, percent=False),
        max_failures=parse_host_count(MAX_FAILURES, value_of(MAX_FAILURES), minimum=0),
        canary_pause=parse_seconds(CANARY_PAUSE, value_of(CANARY_PAUSE)),
        steps=tuple(steps),
    )


def serial_is_set(serial: Sequence[object] | None) -> bool:
    """Whether a play's (templated) ``serial`` asks for batches: anything but absent, 0 or 0%."""
    for item in serial or ():
        count = CountOrPercent.read(item)
        if count is not None and count.value == 0:
            continue
        return True
    return False
