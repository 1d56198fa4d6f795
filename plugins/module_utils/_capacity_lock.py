# Private to this collection: not a public API, may change without notice.
"""A host-wide lock around "check the capacity floor, then take a server out".

Hosts drained at the same time (a rollout window wider than one) would otherwise each see enough servers
UP and all go out together, below the floor. Every lb_member that reaches a balancer from this machine
takes the balancer's lock for the few milliseconds between its capacity check and its state change.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import tempfile
import typing as t


def lock_path(address: str) -> str:
    digest = hashlib.sha256(address.encode()).hexdigest()[:16]
    return os.path.join(tempfile.gettempdir(), f"fleet-rollout-capacity-{digest}.lock")


@contextlib.contextmanager
def capacity_lock(addresses: t.Iterable[str]) -> t.Iterator[None]:
    """Hold the locks of every balancer address (in a fixed order, so two holders never deadlock)."""
    with contextlib.ExitStack() as stack:
        for address in sorted(set(addresses)):
            handle = stack.enter_context(open(lock_path(address), "a"))
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield
