# Private to this collection: not a public API, may change without notice.
"""What a balancer member is to us: one server name, in every backend (of every balancer) that holds it.

BalancerMember takes plain typed inputs and returns a plain dict, with no AnsibleModule inside, so the
same code runs in lb_member on the managed host and from an action plugin on the controller. It decides
``changed`` from one observation before acting, sends nothing in check mode, and confirms every change by
polling HAProxy (every ``poll_interval``, against a deadline) rather than by sleeping a fixed time.
"""

from __future__ import annotations

import dataclasses
import time
import typing as t

from ansible_collections.fleet.rollout.plugins.module_utils._capacity_lock import capacity_lock
from ansible_collections.fleet.rollout.plugins.module_utils._errors import (
    CapacityError,
    HealthCheckFailedError,
    InvalidInputError,
    NotFoundError,
    TimeoutExpiredError,
)
from ansible_collections.fleet.rollout.plugins.module_utils._fsutil import write_text_atomically
from ansible_collections.fleet.rollout.plugins.module_utils._haproxy import (
    ADMIN_FORCED_DRAIN,
    ADMIN_FORCED_MAINT,
    RuntimeApiClient,
    ServerSnapshot,
    Weight,
)
from ansible_collections.fleet.rollout.plugins.module_utils._haproxy_address import RuntimeApiAddress
from ansible_collections.fleet.rollout.plugins.module_utils._hold import (
    HoldFiles,
    HoldWatcher,
    held_warnings,
    start_watcher,
    stop_watcher,
)
from ansible_collections.fleet.rollout.plugins.module_utils._member import (
    CapacityFloor,
    Command,
    Member,
    MemberRequest,
)
from ansible_collections.fleet.rollout.plugins.module_utils._poll import Clock, Sleep, poll_until
from ansible_collections.fleet.rollout.plugins.module_utils._reload import ReloadWatch, haproxy_runs
from ansible_collections.fleet.rollout.plugins.module_utils._validate import validate_name, validate_names

DESIRED_STATES = ("enabled", "drained", "maintenance")
DRAIN_TARGETS = ("drain", "maint")
IDLE_POLLS_TO_CONFIRM = 2  # scur == qcur == 0 on two polls in a row, so a request between polls is not missed
SHUTDOWN_GRACE = 5.0  # how long killed sessions may take to disappear from the counters


def _why_not_serving(snapshot: ServerSnapshot) -> str:
    if snapshot.status.startswith("UP") and snapshot.weight == 0:
        return "weight 0"
    return snapshot.status or snapshot.admin_state


def _status_line(member: Member) -> str:
    checked = member.checked or member.now
    check = " ".join(part for part in (checked.check_status, checked.check_code) if part)
    detail = ", ".join(part for part in (checked.check_description, checked.last_check) if part)
    line = f"HAProxy reports {member.now.status or '?'}"
    if check:
        line += f", check {check}" + (f" ({detail})" if detail else "")
    return line


@dataclasses.dataclass
class BalancerMember:
    """Drain, enable, put in maintenance or re-weight one server on one or several HAProxy balancers."""

    balancers: t.Sequence[RuntimeApiClient]
    request: MemberRequest
    check_mode: bool = False
    clock: Clock = time.monotonic
    sleep: Sleep = time.sleep
    process_runs: t.Callable[[int], bool] = haproxy_runs  # whether a reloaded balancer's old process runs
    state_files: t.Mapping[str, str] = dataclasses.field(default_factory=dict)  # socket -> server-state-file
    warnings: list[str] = dataclasses.field(default_factory=list, init=False)
    held: list[dict[str, t.Any]] = dataclasses.field(default_factory=list, init=False)

    # -- input ------------------------------------------------------------------------------------------

    def validate(self) -> tuple[Weight | None, CapacityFloor | None]:
        """Every input checked before any socket is opened; returns the parsed weight and floor."""
        req = self.request
        validate_name("server name", req.server)
        validate_names("backend name", req.backends)
        for balancer in self.balancers:
            RuntimeApiAddress.parse(balancer.address)
        if not self.balancers:
            raise InvalidInputError("at least one balancer socket is needed")
        addresses = [balancer.address for balancer in self.balancers]
        twice = sorted({a for a in addresses if addresses.count(a) > 1})
        if twice:
            raise InvalidInputError(f"socket {', '.join(twice)} is given more than once", socket=twice)
        if req.state is None and req.weight is None:
            raise InvalidInputError("nothing to do: give a state, a weight or both")
        if req.state is not None and req.state not in DESIRED_STATES:
            raise InvalidInputError(f"state {req.state!r} is not one of {', '.join(DESIRED_STATES)}")
        if req.drain_to not in DRAIN_TARGETS:
            raise InvalidInputError(f"drain_to {req.drain_to!r} is not one of {', '.join(DRAIN_TARGETS)}")
        for name in ("drain_timeout", "up_timeout", "capacity_timeout"):
            if getattr(req, name) < 0:
                raise InvalidInputError(f"{name} must not be negative, got {getattr(req, name)}")
        if req.poll_interval <= 0:
            raise InvalidInputError(f"poll_interval must be above 0, got {req.poll_interval}")
        weight = Weight.parse(req.weight) if req.weight is not None else None
        floor = CapacityFloor.parse(req.min_healthy) if req.min_healthy is not None else None
        return weight, floor

    # -- the run ----------------------------------------------------------------------------------------

    def apply(self) -> dict[str, t.Any]:
        weight, floor = self.validate()
        for balancer in self.balancers:
            balancer.require_admin()
        hold = HoldFiles.of(self.request.server, [b.address for b in self.balancers])
        if not self.check_mode:
            self.held = stop_watcher(hold)  # before the look: a watcher may still drain it again
            self.warnings.extend(held_warnings(self.request.server, self.held))
        members = self.locate(weight)
        guard = floor if self.request.state in ("drained", "maintenance") else None
        if guard is not None and self.check_mode:
            self.wait_for_capacity(members, guard, weight)
        changed = any(member.all_commands() for member in members)
        if not self.check_mode:
            if guard is not None:
                # checks the floor and takes the server out under the balancers' capacity lock
                members = self.wait_for_capacity(members, guard, weight)
            else:
                self.send(members, after_drain=False)
            if self.request.state == "drained":
                self.drain(members)
                if self.request.hold > 0:
                    self.start_holding(hold, members)
            elif self.request.state == "enabled":
                self.wait_until_up(members)
            self.poll(members)  # the state each member is left in
            changed = changed or any(m.sessions_killed or m.reasserted for m in members)
        return self.result(changed, members)

    def locate(self, weight: Weight | None) -> list[Member]:
        """The server in each backend it is in (or in each asked for), with the plan for it."""
        server, asked = self.request.server, tuple(dict.fromkeys(self.request.backends))
        members: list[Member] = []
        for balancer in self.balancers:
            pools: dict[str, list[ServerSnapshot]] = {}
            for snapshot in balancer.servers():
                pools.setdefault(snapshot.backend, []).append(snapshot)
            for backend in asked:
                if backend not in pools:
                    raise NotFoundError(
                        f"backend {backend!r} does not exist on {balancer.address} "
                        f"(backends with servers there: {', '.join(sorted(pools)) or 'none'})",
                        backend=backend,
                        socket=balancer.address,
                    )
            holding = [b for b in (asked or sorted(pools)) if any(s.server == server for s in pools[b])]
            missing = [b for b in asked if b not in holding]
            if missing or not holding:
                where = f"backend {', '.join(missing)}" if missing else "any backend"
                raise NotFoundError(
                    f"server {server!r} is not in {where} on {balancer.address}",
                    server=server,
                    socket=balancer.address,
                )
            for backend in holding:
                before = next(s for s in pools[backend] if s.server == server)
                member = Member(balancer, backend, before, pools[backend])
                member.commands, member.commands_after_drain = self.plan(member, weight)
                members.append(member)
        return members

    def plan(self, member: Member, weight: Weight | None) -> tuple[list[Command], list[Command]]:
        """The commands that take this member from where it is to the request: (now, after the drain)."""
        req, snap = self.request, member.before
        now: list[Command] = []
        later: list[Command] = []
        target_weight = None
        if weight is not None:
            target_weight = weight.resolve(snap.initial_weight)
            if weight.percent and weight.value and not target_weight:
                self.warnings.append(
                    f"weight {weight} of {snap.server}'s configured weight {snap.initial_weight} is 0 in "
                    f"{member.where} (HAProxy rounds down), so it takes no traffic"
                )
        elif req.state == "enabled":
            target_weight = snap.initial_weight  # enabling restores the configured weight
        if target_weight is not None and target_weight != snap.weight:
            now.append(Command("weight", str(target_weight)))

        forced_maint = bool(snap.admin_flags & ADMIN_FORCED_MAINT)
        forced_out = bool(snap.admin_flags & (ADMIN_FORCED_MAINT | ADMIN_FORCED_DRAIN))
        if req.state == "enabled" and forced_out:
            now.extend(self.plan_enable(member, forced_maint))
        elif req.state == "drained":
            if not forced_out:
                now.append(Command("state", "drain"))
            if req.drain_to == "maint" and not forced_maint:
                later.append(Command("state", "maint"))
        elif req.state == "maintenance" and not forced_maint:
            now.append(Command("state", "maint"))
        return now, later

    def plan_enable(self, member: Member, forced_maint: bool) -> list[Command]:
        """Back into rotation only through HAProxy's own check, unless asked otherwise.

        Leaving maintenance, HAProxy marks a server UP at once and checks it afterwards. Marking its health
        down first makes it need ``rise`` passing checks before it takes a request. Health set while in
        maintenance is reset on the way out, so the server goes to drain (no new traffic) first.
        """
        if not self.request.check_before_traffic:
            return [Command("state", "ready")]
        if not member.before.check_enabled:
            self.warnings.append(
                f"{member.before.server} has no health check in {member.where}: "
                "it takes traffic as soon as it is ready"
            )
            return [Command("state", "ready")]
        leave_maint = [Command("state", "drain")] if forced_maint else []
        return [*leave_maint, Command("health", "down"), Command("state", "ready")]

    # -- capacity ---------------------------------------------------------------------------------------

    def capacity_shortfall(self, member: Member, floor: CapacityFloor) -> str | None:
        """Why taking this member out would go below the floor, or None if it would not."""
        if not member.takes_capacity_away():
            return None
        active = [s for s in member.pool if not s.backup]
        up = [s.server for s in active if s.serving]
        down = [f"{s.server} ({_why_not_serving(s)})" for s in active if not s.serving]
        needed = floor.servers_needed(len(active))
        if len(up) - 1 >= needed:
            return None
        return (
            f"{member.where}: {len(up)} of {len(active)} servers UP ({', '.join(up)}); "
            f"not UP: {', '.join(down) or 'none'}; taking {member.before.server} out would leave "
            f"{len(up) - 1}, below min_healthy {floor} (floor {needed})"
        )

    def wait_for_capacity(
        self, members: list[Member], floor: CapacityFloor, weight: Weight | None
    ) -> list[Member]:
        """Wait for the floor to hold on every member, then (not in check mode) send the commands that
        take the server out, both under the capacity lock; returns the members as last seen."""
        shortfalls: list[str] = []

        def taken_out() -> bool:
            nonlocal members, shortfalls
            with capacity_lock(self.balancers if not self.check_mode else ()):
                if not self.check_mode:
                    members = self.locate(weight)  # the pool as it is now that we hold the lock
                shortfalls = [s for s in (self.capacity_shortfall(m, floor) for m in members) if s]
                if not shortfalls and not self.check_mode:
                    self.send(members, after_drain=False)
                return not shortfalls

        # check mode looks once: it never waits for the pool to change
        deadline = self.clock() + (0 if self.check_mode else self.request.capacity_timeout)
        if self._poll(taken_out, deadline):
            return members
        raise CapacityError(
            f"refusing to take {self.request.server} out: " + "; ".join(shortfalls),
            min_healthy=str(floor),
            waited=0 if self.check_mode else self.request.capacity_timeout,
            changed=False,
        )

    # -- acting -----------------------------------------------------------------------------------------

    def send(self, members: list[Member], after_drain: bool) -> None:
        for member in members:
            commands = member.commands_after_drain if after_drain else member.commands
            for command in commands:
                member.balancer.set_server(
                    member.backend, member.before.server, command.setting, command.value
                )
            if commands:
                self.save_state(member.balancer)

    def save_state(self, balancer: RuntimeApiClient) -> None:
        """Where the balancer loads its runtime state from on a reload (server_state_files), the state as
        it is now, so that even a reload that does not save it first keeps what this run set."""
        path = self.state_files.get(balancer.address)
        if path:
            write_text_atomically(path, balancer.execute("show servers state"), durable=False)

    def poll(self, members: list[Member]) -> float:
        """Observe every balancer that holds one of ``members`` once; returns the time of the look."""
        for balancer in {id(m.balancer): m.balancer for m in members}.values():
            mine = [m for m in members if m.balancer is balancer]
            backends = {m.backend for m in mine}  # one backend is asked for by name; the server alone
            only = next(iter(backends)) if len(backends) == 1 else None
            seen = {(s.backend, s.server): s for s in balancer.servers(only, self.request.server)}
            for member in mine:
                member.latest = seen.get((member.backend, member.before.server), member.latest)
                if member.latest and not member.latest.check_in_progress:
                    member.checked = member.latest
        return self.clock()

    def drain(self, members: list[Member]) -> None:
        """Wait until, everywhere the server was set to drain, no session or queued request is left."""
        started = self.clock()
        deadline = started + self.request.drain_timeout
        reloads = ReloadWatch(list({id(m.balancer): m.balancer for m in members}.values()), self.process_runs)
        reloads.begin()
        left = self.wait_until_idle(members, started, deadline)
        if not left:
            self.wait_for_previous_processes(reloads, deadline)
        if left and self.request.shutdown_sessions:
            for member in left:
                member.sessions_killed = member.now.scur
                member.balancer.shutdown_sessions(member.backend, member.before.server)
            left = self.wait_until_idle(left, started, self.clock() + SHUTDOWN_GRACE)
        if left:
            raise TimeoutExpiredError(
                f"{self.request.server} was set to drain but still had sessions after drain_timeout "
                f"{self.request.drain_timeout:g}s: "
                + "; ".join(
                    f"{m.where}: {m.now.scur} sessions, {m.now.qcur} queued, status {m.now.status}, "
                    f"admin state {m.now.admin_state}"
                    + (
                        f", found back in rotation and drained again {m.reasserted} times"
                        if m.reasserted
                        else ""
                    )
                    for m in left
                ),
                changed=True,
                members=[m.describe(predicted=self.check_mode) for m in members],
            )
        self.send(members, after_drain=True)

    def wait_until_idle(self, members: list[Member], started: float, deadline: float) -> list[Member]:
        """Poll until each member is out of rotation and idle on two polls in a row; those still busy."""
        pending = list(members)

        def all_idle() -> bool:
            now = self.poll(pending)
            for member in list(pending):
                if not member.now.out_of_rotation:
                    self.reassert(member)
                elif member.now.out_of_rotation and member.now.idle:
                    member.idle_polls += 1
                    if member.idle_polls == 1:
                        member.idle_since = now
                    if member.idle_polls >= IDLE_POLLS_TO_CONFIRM:
                        member.drain_seconds = round(member.idle_since - started, 3)
                        pending.remove(member)
                else:
                    member.idle_polls = 0
            return not pending

        # Past the deadline, a member seen idle once still gets the poll that confirms it.
        self._poll(all_idle, deadline, overtime=lambda: any(m.idle_polls for m in pending))
        return pending

    def start_holding(self, files: HoldFiles, members: list[Member]) -> None:
        """Leave a watcher that drains the server again wherever it is found back in rotation."""
        watched = [(m.balancer, m.backend) for m in members]
        start_watcher(
            HoldWatcher(
                files,
                self.request.server,
                watched,
                self.request.hold,
                self.request.poll_interval,
                self.save_state,
            )
        )

    def wait_for_previous_processes(self, reloads: ReloadWatch, deadline: float) -> None:
        """A balancer reloaded during the drain: its previous process may still serve the server's
        sessions, which the new one does not count. Wait until that process is gone."""
        wait = reloads.wait_for_previous(lambda done: self._poll(done, deadline), self.clock)
        if wait.left:
            raise TimeoutExpiredError(
                f"{self.request.server} was drained, but HAProxy was reloaded during the drain and its "
                f"previous process still ran at drain_timeout {self.request.drain_timeout:g}s, perhaps "
                f"serving the server's sessions: {wait.left}",
                changed=True,
            )
        self.warnings.extend(wait.warnings)

    def reassert(self, member: Member) -> None:
        """The server is back in rotation while this run waits for its drain: send the drain again."""
        member.reasserted += 1
        member.idle_polls = 0
        # the weight this run set is lost with the rest of the runtime state
        again = [c for c in member.commands if c.setting != "state"] + [Command("state", "drain")]
        for command in again:
            member.balancer.set_server(member.backend, member.before.server, command.setting, command.value)
        self.save_state(member.balancer)
        self.warnings.append(
            f"{self.request.server} was found back in rotation ({member.where}, status {member.now.status}) "
            "while draining, as after a reload that did not keep the runtime state: drained again"
        )

    def wait_until_up(self, members: list[Member]) -> None:
        """Poll until the balancers' own health checks report every member UP."""
        started = self.clock()
        deadline = started + self.request.up_timeout
        pending = list(members)

        def all_up() -> bool:
            now = self.poll(pending)
            for member in [m for m in pending if m.now.up]:
                member.up_seconds = round(now - started, 3)
                pending.remove(member)
            return not pending

        if self._poll(all_up, deadline):
            return
        raise HealthCheckFailedError(
            f"{self.request.server} did not come UP within up_timeout {self.request.up_timeout:g}s: "
            + "; ".join(f"{m.where}: {_status_line(m)}" for m in pending),
            changed=any(m.commands for m in members),
            members=[m.describe(predicted=self.check_mode) for m in members],
        )

    def _poll(self, attempt: t.Callable[[], bool], deadline: float, **options: t.Any) -> bool:
        return poll_until(attempt, deadline, self.request.poll_interval, self.clock, self.sleep, **options)

    # -- reporting --------------------------------------------------------------------------------------

    def result(self, changed: bool, members: list[Member]) -> dict[str, t.Any]:
        described = [m.describe(predicted=self.check_mode) for m in members]
        diff: dict[str, dict[str, t.Any]] = {"before": {}, "after": {}}
        for member, row in zip(members, described):
            for side in ("before", "after"):
                diff[side][member.key] = {key: row[f"{key}_{side}"] for key in ("admin_state", "weight")}
        return {
            "changed": changed,
            "server": self.request.server,
            "state": self.request.state,
            "members": described,
            "diff": diff,
            "held": self.held,
            "warnings": list(dict.fromkeys(self.warnings)),  # capacity waits plan again
        }
