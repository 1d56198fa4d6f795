# Private to this collection: not a public API, may change without notice.
"""One balancer member as lb_member handles it: what is asked for it, the commands planned for it, and
what was seen of it during the run."""

from __future__ import annotations

import typing as t
from dataclasses import dataclass, field

from ansible_collections.fleet.rollout.plugins.module_utils._counts import CountOrPercent
from ansible_collections.fleet.rollout.plugins.module_utils._errors import InvalidInputError
from ansible_collections.fleet.rollout.plugins.module_utils._haproxy import RuntimeApiClient, ServerSnapshot


class CapacityFloor(CountOrPercent):
    """``min_healthy``: a number of servers, or a percentage of the backend's active servers."""

    @classmethod
    def parse(cls, raw: t.Any) -> CapacityFloor:
        floor = cls.read(raw)
        if floor is None or (floor.percent and floor.value > 100):
            raise InvalidInputError(
                f"min_healthy {raw!r} is neither a count of servers nor a percentage from 0% to 100%",
                min_healthy=str(raw),
            )
        return t.cast(CapacityFloor, floor)

    def servers_needed(self, pool_size: int) -> int:
        return self.share_of(pool_size, round_up=True)  # rounded up: 75% of 3 servers needs 3


@dataclass(frozen=True)
class MemberRequest:
    """What the caller wants for one server; plain values, as a module's params or an action's args."""

    server: str
    state: str | None = None
    backends: tuple[str, ...] = ()
    weight: t.Any = None
    drain_timeout: float = 60.0
    drain_to: str = "drain"
    shutdown_sessions: bool = False
    up_timeout: float = 60.0
    check_before_traffic: bool = True
    min_healthy: t.Any = None
    capacity_timeout: float = 60.0
    poll_interval: float = 0.2
    hold: float = 0.0  # seconds a watcher keeps a drained server out of rotation after the drain


@dataclass(frozen=True)
class Command:
    """One ``set server`` this run sends (or, in check mode, would send)."""

    setting: str
    value: str

    def describe(self, backend: str, server: str) -> str:
        return f"set server {backend}/{server} {self.setting} {self.value}"


@dataclass
class Member:
    """The server in one backend of one balancer, and what happened to it during this run."""

    balancer: RuntimeApiClient
    backend: str
    before: ServerSnapshot
    pool: list[ServerSnapshot]
    commands: list[Command] = field(default_factory=list)
    commands_after_drain: list[Command] = field(default_factory=list)
    latest: ServerSnapshot | None = None
    # The latest look whose health check had completed: one taken while a check runs has no code.
    checked: ServerSnapshot | None = None
    drain_seconds: float | None = None
    up_seconds: float | None = None
    sessions_killed: int | None = None
    idle_polls: int = 0
    idle_since: float = 0.0
    # Times the drain was found undone while waiting (a reload that lost the runtime state, another
    # tool) and sent again.
    reasserted: int = 0

    @property
    def where(self) -> str:
        return f"backend {self.backend} on {self.balancer.address}"

    @property
    def key(self) -> str:
        return f"{self.balancer.address} {self.backend}/{self.before.server}"

    @property
    def now(self) -> ServerSnapshot:
        return self.latest or self.before

    def all_commands(self) -> list[Command]:
        return self.commands + self.commands_after_drain

    def takes_capacity_away(self) -> bool:
        return self.before.serving and any(c.setting == "state" for c in self.all_commands())

    def predicted(self) -> tuple[str, str, int]:
        """Admin state, status and weight the member ends with, from its plan (for check mode)."""
        snap, state = self.before, self.before.admin_state
        for command in self.all_commands():
            if command.setting == "state":
                state = command.value
        weights = [int(c.value) for c in self.all_commands() if c.setting == "weight"]
        weight = weights[-1] if weights else snap.weight
        if not any(c.setting == "state" for c in self.all_commands()):
            return snap.admin_state, snap.status, weight
        status = {"ready": "UP", "drain": "DRAIN", "maint": "MAINT"}[state]
        return state, status, weight

    def describe(self, predicted: bool) -> dict[str, t.Any]:
        before = self.before
        if predicted or self.latest is None:
            admin_after, status_after, weight_after = self.predicted()
        else:
            admin_after, status_after, weight_after = (
                self.latest.admin_state,
                self.latest.status,
                self.latest.weight,
            )
        return {
            "balancer": self.balancer.address,
            "backend": self.backend,
            "server": before.server,
            "status_before": before.status,
            "status_after": status_after,
            "admin_state_before": before.admin_state,
            "admin_state_after": admin_after,
            "weight_before": before.weight,
            "weight_after": weight_after,
            "sessions_at_start": before.scur,
            "queued_at_start": before.qcur,
            "drain_seconds": self.drain_seconds,
            "up_seconds": self.up_seconds,
            "sessions_killed": self.sessions_killed,
            "drain_reasserted": self.reasserted,
            "commands": [c.describe(self.backend, before.server) for c in self.all_commands()],
        }
