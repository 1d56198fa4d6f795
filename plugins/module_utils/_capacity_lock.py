# Private to this collection: not a public API, may change without notice.
"""A host-wide lock around "check the capacity floor, then take a server out".

Hosts drained at the same time (a rollout window wider than one) would otherwise each see enough servers
UP and all go out together, below the floor. Every lb_member that reaches a balancer from this machine
takes the balancer's lock for the few milliseconds between its capacity check and its state change.

The lock is the balancer's, not its address's: it is keyed by the HAProxy process that answers (its pid,
from ``show info``), so a run on the unix socket and another on the TCP socket of the same HAProxy share
it, whatever controller each was started from, as long as their lb_member runs on the same host (the
balancer's host, reached with delegate_to: see the README). A reload changes the process: the identity
is read again once the lock is held, and a changed one starts over with the new process's lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import tempfile
import typing as t

from ansible_collections.fleet.rollout.plugins.module_utils._errors import ConflictError
from ansible_collections.fleet.rollout.plugins.module_utils._haproxy import RuntimeApiClient

IDENTITY_TRIES = 5  # reloads in a row while one capacity check waits for its lock


def lock_path(key: str) -> str:
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return os.path.join(tempfile.gettempdir(), f"fleet-rollout-capacity-{digest}.lock")


def balancer_key(balancer: RuntimeApiClient) -> str:
    """The HAProxy process behind an address; the address itself for one that does not say its pid."""
    pid = balancer.process_id()
    return f"haproxy pid {pid}" if pid is not None else f"address {balancer.address}"


@contextlib.contextmanager
def capacity_lock(balancers: t.Sequence[RuntimeApiClient]) -> t.Iterator[None]:
    """Hold the lock of every balancer (in a fixed order, so two holders never deadlock), keyed by the
    process that answers it, once that process is the same before and after the lock was taken."""
    for _attempt in range(IDENTITY_TRIES):
        keys = sorted({balancer_key(balancer) for balancer in balancers})
        with contextlib.ExitStack() as stack:
            for key in keys:
                handle = stack.enter_context(open(lock_path(key), "a"))
                fcntl.flock(handle, fcntl.LOCK_EX)
            if sorted({balancer_key(balancer) for balancer in balancers}) == keys:
                yield
                return
    raise ConflictError(
        f"the balancers {', '.join(b.address for b in balancers)} answered from another HAProxy process "
        f"at each of {IDENTITY_TRIES} tries to take their capacity lock (reloading again and again?)"
    )
