# Private to this collection: not a public API, may change without notice.
"""HAProxy reloaded while a server drains: the new process counts none of the sessions that the previous
one still serves until they end, so a drain it calls idle may not be. On the balancer's own host (a unix
socket) the previous process can be watched until it is gone; elsewhere only a warning can say so."""

from __future__ import annotations

import dataclasses
import typing as t

from ansible_collections.fleet.rollout.plugins.module_utils._haproxy import RuntimeApiClient
from ansible_collections.fleet.rollout.plugins.module_utils._haproxy_address import RuntimeApiAddress
from ansible_collections.fleet.rollout.plugins.module_utils._process import process_runs


def haproxy_runs(pid: int) -> bool:
    """Whether ``pid`` is a live HAProxy process on this host (its name checked where /proc tells it)."""
    if not process_runs(pid):
        return False
    try:
        with open(f"/proc/{pid}/comm", encoding="utf-8") as comm:
            return comm.read().strip().startswith("haproxy")
    except OSError:
        return True  # no /proc to tell: a live pid is taken for the process


def _on_this_host(address: RuntimeApiAddress) -> bool:
    return bool(address.path) or address.host == "localhost" or address.host.startswith("127.")


@dataclasses.dataclass
class ReloadWatch:
    """The process each balancer answered from when the drain began, to tell a reload afterwards."""

    balancers: t.Sequence[RuntimeApiClient]
    runs: t.Callable[[int], bool] = haproxy_runs
    started: dict[str, int | None] = dataclasses.field(default_factory=dict, init=False)

    def begin(self) -> None:
        self.started = {b.address: b.process_id() for b in self.balancers}

    def previous_processes(self) -> tuple[dict[str, int], list[str]]:
        """Of the balancers reloaded since ``begin``: {address: previous pid} still running here, and
        warnings for those whose previous process cannot be watched from here."""
        running: dict[str, int] = {}
        unseen: list[str] = []
        for balancer in self.balancers:
            before = self.started.get(balancer.address)
            if before is None or balancer.process_id() == before:
                continue
            if _on_this_host(RuntimeApiAddress.parse(balancer.address)):
                if self.runs(before):
                    running[balancer.address] = before
            else:
                unseen.append(
                    f"HAProxy at {balancer.address} was reloaded during the drain: the sessions its previous "
                    f"process (pid {before}) still serves cannot be seen from here"
                )
        return running, unseen

    def wait_for_previous(
        self, poll: t.Callable[[t.Callable[[], bool]], bool], clock: t.Callable[[], float]
    ) -> PreviousProcessWait:
        """Poll (``poll(done) -> done in time``) until the previous processes found running are gone."""
        running, unseen = self.previous_processes()
        if not running:
            return PreviousProcessWait(warnings=unseen)
        started = clock()
        named = ", ".join(f"{where}, pid {pid}" for where, pid in running.items())
        if not poll(lambda: not any(map(self.runs, running.values()))):
            return PreviousProcessWait(warnings=unseen, left=named)
        waited = (
            f"HAProxy was reloaded during the drain: waited {clock() - started:.1f}s for its previous "
            f"process to end its connections ({named})"
        )
        return PreviousProcessWait(warnings=[*unseen, waited])


@dataclasses.dataclass(frozen=True)
class PreviousProcessWait:
    warnings: list[str]
    left: str = ""  # the previous processes still running when the wait ended, named
