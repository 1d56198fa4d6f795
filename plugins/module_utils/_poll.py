# Private to this collection: not a public API, may change without notice.
"""The one polling loop: a condition checked at once and then every interval, against a deadline.

Modelled on kubernetes.core's ``Waiter``: the caller's ``attempt`` observes (and may act); the loop only
decides when to look again and when to give up. The clock and the sleep are injected so that tests move
time without waiting.
"""

from __future__ import annotations

import time
import typing as t

Clock = t.Callable[[], float]
Sleep = t.Callable[[float], None]


def _never() -> bool:
    return False


def poll_until(
    attempt: t.Callable[[], bool],
    deadline: float,
    interval: float,
    clock: Clock = time.monotonic,
    sleep: Sleep = time.sleep,
    *,
    overtime: t.Callable[[], bool] = _never,
    within_deadline: bool = False,
    land_on_deadline: bool = False,
) -> bool:
    """Call ``attempt`` until it returns True (then True) or the deadline has passed (then False).

    ``attempt`` always runs at least once. By default one more attempt runs once the clock reached
    ``deadline``, so a state that arrives just in time is seen; ``overtime`` keeps polling past the
    deadline while it says so (a drain seen idle once gets the poll that confirms it). With
    ``within_deadline`` no attempt starts at or after the deadline and no sleep would end past it (a
    health check: an attempt after its deadline proves nothing). With ``land_on_deadline`` the last sleep
    is cut short so that the last attempt runs at the deadline itself (a bake measures until its end).
    """
    while True:
        if attempt():
            return True
        now = clock()
        if within_deadline and now + interval >= deadline:
            return False
        if now >= deadline and not overtime():
            return False
        sleep(min(interval, max(0.0, deadline - now)) if land_on_deadline else interval)
        if within_deadline and clock() >= deadline:  # overslept (a loaded machine): no attempt after it
            return False
