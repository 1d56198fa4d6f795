# Private to this collection: not a public API, may change without notice.
"""The task interface of release_analysis: its argument spec, the reads of the balancers and the bake.

The module and its controller-side action plugin both use this, so the task behaves the same wherever
it runs. The clock and the sleep are injected, so the bake is tested without waiting.
"""

from __future__ import annotations

import dataclasses
import math
import time
import typing as t

from ansible_collections.fleet.rollout.plugins.module_utils._analysis import (
    BASELINE_CONFIDENCE,
    AnalysisPolicy,
    ServerCounters,
    Traffic,
    Verdict,
    binomial_upper_bound,
    describe,
    interval_traffic,
    judge,
)
from ansible_collections.fleet.rollout.plugins.module_utils._errors import (
    InvalidInputError,
    NotFoundError,
    ReleaseWorseError,
)
from ansible_collections.fleet.rollout.plugins.module_utils._haproxy import (
    RuntimeApiClient,
)
from ansible_collections.fleet.rollout.plugins.module_utils._haproxy_address import RuntimeApiAddress
from ansible_collections.fleet.rollout.plugins.module_utils._poll import Clock, Sleep, poll_until
from ansible_collections.fleet.rollout.plugins.module_utils._task_interface import TaskInterface
from ansible_collections.fleet.rollout.plugins.module_utils._validate import validate_names
from ansible_collections.fleet.rollout.plugins.module_utils._verdict import (
    FAIL,
    INCONCLUSIVE,
    INCONCLUSIVE_OPTION,
    PASS,
    act_on_inconclusive,
)

ANALYSIS_ARGUMENT_SPEC: dict[str, dict[str, t.Any]] = {
    "socket": {"type": "list", "elements": "str", "required": True},
    "backends": {"type": "list", "elements": "str"},
    "canary": {"type": "list", "elements": "str", "required": True},
    "baseline": {"type": "list", "elements": "str"},
    "exclude": {"type": "list", "elements": "str", "default": []},
    "since": {"type": "list", "elements": "dict", "default": []},
    "bake": {"type": "float", "default": 0},
    "settle": {"type": "bool", "default": False},
    "min_server_responses": {"type": "int", "default": 0},
    "hold_for": {"type": "list", "elements": "str"},
    "clear_below": {"type": "float"},
    "interval": {"type": "float", "default": 1},
    "inconclusive": INCONCLUSIVE_OPTION,
    "max_error_ratio": {"type": "float", "default": 2.0},
    "error_margin": {"type": "float", "default": 1.0},
    "confidence": {"type": "float", "default": 0.999},
    "min_responses": {"type": "int", "default": 200},
    "max_latency_ratio": {"type": "float", "default": 1.5},
    "latency_margin_ms": {"type": "float", "default": 50},
    "latency_min_responses": {"type": "int", "default": 30},
    "timeout": {"type": "float", "default": 5},
    "return_servers": {"type": "list", "elements": "str"},
}

# With `settle`, a bake ends at the first look where no p-value is below this: nothing leans towards worse.
SUSPICIOUS_P = 0.05

# (balancer, backend, server)
ServerKey = t.Tuple[str, str, str]


@dataclasses.dataclass(frozen=True)
class Read:
    """Every server's counters on every balancer at one moment (wall clock, so reads taken by other
    hosts' tasks compare)."""

    at: float
    counters: dict[ServerKey, ServerCounters]
    status: dict[ServerKey, str]

    def entries(self, only: tuple[str, ...] | None = None) -> list[dict[str, t.Any]]:
        """As the result's ``servers``, which a later task passes back through ``since``; ``only``: those
        servers' alone."""
        return [
            {
                "balancer": key[0],
                "backend": key[1],
                "server": key[2],
                "status": self.status.get(key, ""),
                "read_at": self.at,
                "counters": counters.as_dict(),
            }
            for key, counters in self.counters.items()
            if only is None or key[2] in only
        ]


@dataclasses.dataclass(frozen=True)
class Mark:
    """An earlier read (``since``): the server it names counts from it, the baseline from the earliest."""

    server: str | None
    at: float
    counters: dict[ServerKey, ServerCounters]

    @classmethod
    def parse(cls, index: int, raw: t.Mapping[str, t.Any]) -> Mark:
        where = f"since[{index}]"
        server = raw.get("server")
        if server is not None and not isinstance(server, str):
            raise InvalidInputError(f"{where}.server must be a server name, got {server!r}")
        entries = raw.get("servers")
        if not isinstance(entries, list):
            raise InvalidInputError(f"{where}.servers must be the servers list of an earlier result")
        counters: dict[ServerKey, ServerCounters] = {}
        times = []
        for entry in entries:
            if not isinstance(entry, dict) or not all(
                isinstance(entry.get(k), str) for k in ("balancer", "backend", "server")
            ):
                raise InvalidInputError(f"{where}.servers holds an entry that is not a server: {entry!r}")
            read_at = entry.get("read_at")
            if isinstance(read_at, bool) or not isinstance(read_at, (int, float)):
                raise InvalidInputError(f"{where}.servers holds an entry without read_at: {entry!r}")
            times.append(float(read_at))
            key = (entry["balancer"], entry["backend"], entry["server"])
            counters[key] = ServerCounters.from_dict(entry.get("counters"))
        return cls(server=server, at=min(times) if times else math.inf, counters=counters)


@dataclasses.dataclass(frozen=True)
class AnalysisRequest:
    canary: tuple[str, ...]
    baseline: tuple[str, ...] | None
    exclude: tuple[str, ...]
    backends: tuple[str, ...]
    since: tuple[Mark, ...]
    bake: float
    settle: bool
    min_server_responses: int
    # the canary servers settle holds for until each is cleared (None: every canary server)
    hold_for: tuple[str, ...]
    clear_below: float | None
    interval: float
    inconclusive: str
    policy: AnalysisPolicy
    # the servers whose counters the result returns (None: every server read)
    return_servers: tuple[str, ...] | None = None

    @classmethod
    def from_params(cls, params: t.Mapping[str, t.Any]) -> AnalysisRequest:
        for name in ("bake", "interval", "timeout"):
            value = params[name]
            if not math.isfinite(value) or value < 0 or (name != "bake" and value == 0):
                expected = "0 or more" if name == "bake" else "more than 0"
                raise InvalidInputError(f"{name} must be a number of seconds ({expected}), got {value!r}")
        canary = tuple(validate_names("server name", params["canary"]))
        if params["min_server_responses"] < 0:
            raise InvalidInputError(
                f"min_server_responses must be 0 or more, got {params['min_server_responses']!r}"
            )
        hold_for = _hold_for(canary, params["hold_for"])
        clear_below = params["clear_below"]
        if clear_below is not None and not (math.isfinite(clear_below) and 0 < clear_below <= 100):
            raise InvalidInputError(
                f"clear_below must be a percentage above 0 and at most 100, got {clear_below!r}"
            )
        baseline = params["baseline"]
        exclude = tuple(validate_names("server name", params["exclude"]))
        overlap = sorted(set(canary) & set(baseline or ()))
        if overlap:
            raise InvalidInputError(f"servers {overlap} are in both canary and baseline")
        policy = AnalysisPolicy(
            **{name.name: params[name.name] for name in dataclasses.fields(AnalysisPolicy)}
        )
        policy = policy.validate()
        return cls(
            canary=canary,
            baseline=_names_or_none("server name", baseline),
            exclude=exclude,
            backends=tuple(validate_names("backend name", params["backends"] or ())),
            since=tuple(Mark.parse(i, raw) for i, raw in enumerate(params["since"])),
            bake=params["bake"],
            settle=params["settle"],
            min_server_responses=params["min_server_responses"],
            hold_for=hold_for,
            clear_below=clear_below,
            interval=params["interval"],
            inconclusive=params["inconclusive"],
            policy=policy,
            return_servers=_names_or_none("server name", params["return_servers"]),
        )


def _names_or_none(what: str, raw: t.Any) -> tuple[str, ...] | None:
    return None if raw is None else tuple(validate_names(what, raw))


def _hold_for(canary: tuple[str, ...], raw: t.Any) -> tuple[str, ...]:
    """The canary servers whose traffic holds the verdict: all of them unless named, never others."""
    hold_for = canary if raw is None else tuple(validate_names("server name", raw))
    strangers = sorted(set(hold_for) - set(canary))
    if strangers:
        raise InvalidInputError(f"hold_for names servers that are not in canary: {strangers}")
    return hold_for


@dataclasses.dataclass
class _Bake:
    """What a bake under analysis has seen so far."""

    latest: Read
    looks: int = 0
    held_before: int | None = None
    verdict: Verdict = dataclasses.field(init=False)


@dataclasses.dataclass
class ReleaseAnalysis:
    """Reads the balancers until the canary's verdict is in or the bake's time is up."""

    balancers: t.Sequence[RuntimeApiClient]
    request: AnalysisRequest
    clock: Clock = time.time
    sleep: Sleep = time.sleep

    def run(self) -> dict[str, t.Any]:
        for balancer in self.balancers:
            RuntimeApiAddress.parse(balancer.address)
        started = self.clock()
        first = self.read()
        canary, baseline = self._groups(first)
        if not canary:
            # No server on the new release yet (the first host of a rollout): only the read, for later.
            nothing = Traffic()
            verdict = Verdict(INCONCLUSIVE, "no canary server to judge", nothing, nothing, 0.0, 1.0, None)
            return self._outcome(
                verdict, canary=canary, baseline=baseline, latest=first, looks=0, elapsed=0.0
            )
        starts = self._starts(first, canary)
        deadline = started + self.request.bake
        bake = _Bake(latest=first)

        def judged() -> bool:
            if bake.looks:
                bake.latest = self.read()
            bake.looks += 1
            bake.verdict, leaning, each = self._judge(starts, bake.latest, canary, baseline)
            if bake.verdict.verdict == FAIL:
                return True
            if not self.request.settle:
                return bake.verdict.verdict == PASS
            held = [each[server] for server in self.request.hold_for]
            held_responses = sum(traffic.responses for traffic in held)
            # done once nothing leans towards worse and each held server is cleared (or no more
            # responses come in: a pool without traffic would only wait for the deadline)
            arriving = bake.held_before is None or held_responses > bake.held_before
            bake.held_before = held_responses
            return not leaning and (all(map(self._cleared, held)) or not arriving)

        poll_until(judged, deadline, self.request.interval, self.clock, self.sleep, land_on_deadline=True)
        verdict, latest, looks = bake.verdict, bake.latest, bake.looks
        return self._outcome(
            verdict,
            canary=canary,
            baseline=baseline,
            latest=latest,
            looks=looks,
            elapsed=self.clock() - started,
        )

    def read(self) -> Read:
        at = self.clock()
        counters: dict[ServerKey, ServerCounters] = {}
        status: dict[ServerKey, str] = {}
        for balancer in self.balancers:
            for row in balancer.show_stat_rows():
                if self.request.backends and row.get("pxname") not in self.request.backends:
                    continue
                key = (balancer.address, row.get("pxname", ""), row.get("svname", ""))
                counters[key] = ServerCounters.from_row(row)
                status[key] = row.get("status", "")
        return Read(at=at, counters=counters, status=status)

    def _groups(self, read: Read) -> tuple[tuple[str, ...], tuple[str, ...]]:
        seen = {key[2] for key in read.counters}
        backends_seen = {key[1] for key in read.counters}
        missing_backends = [b for b in self.request.backends if b not in backends_seen]
        if missing_backends:
            raise NotFoundError(f"no backend {', '.join(map(repr, missing_backends))} on the balancers")
        missing = [s for s in self.request.canary + (self.request.baseline or ()) if s not in seen]
        if missing:
            where = "backend " + ", ".join(self.request.backends) if self.request.backends else "any backend"
            raise NotFoundError(
                f"no server {', '.join(map(repr, missing))} in {where} on the balancers", missing=missing
            )
        canary = self.request.canary
        if self.request.baseline is not None:
            baseline = self.request.baseline
        else:
            left_out = set(canary) | set(self.request.exclude)
            baseline = tuple(sorted(s for s in seen if s not in left_out))
        return canary, baseline

    def _starts(self, first: Read, canary: tuple[str, ...]) -> dict[ServerKey, ServerCounters]:
        """Where each server's counting starts: a canary server at the mark naming it, any other at the
        earliest mark holding it; without one, at this task's first read."""
        starts = dict(first.counters)
        for mark in sorted(self.request.since, key=lambda m: m.at, reverse=True):
            for key, counters in mark.counters.items():
                if key[2] not in canary:
                    starts[key] = counters  # the earliest mark is applied last
        for mark in self.request.since:
            if mark.server in canary:
                for key, counters in mark.counters.items():
                    if key[2] == mark.server:
                        starts[key] = counters
        return starts

    def _judge(
        self,
        starts: dict[ServerKey, ServerCounters],
        latest: Read,
        canary: tuple[str, ...],
        baseline: tuple[str, ...],
    ) -> tuple[Verdict, bool, dict[str, Traffic]]:
        """The verdict; whether the evidence leans towards worse (a p-value below SUSPICIOUS_P); each
        canary server's traffic."""

        # each server's traffic once, on every balancer and backend: a group's is the sum of its servers'
        # (at hundreds of servers, a pass over every counter per canary server grew with their square)
        by_server: dict[str, Traffic] = {}
        for key, now in latest.counters.items():
            by_server[key[2]] = by_server.get(key[2], Traffic()) + interval_traffic(starts.get(key), now)

        def traffic_of(servers: tuple[str, ...]) -> Traffic:
            total = Traffic()
            for server in dict.fromkeys(servers):
                total = total + by_server.get(server, Traffic())
            return total

        policy = self.request.policy
        baseline_traffic = traffic_of(baseline)
        each = {server: traffic_of((server,)) for server in canary}
        group = judge(traffic_of(canary), baseline_traffic, policy, "canary " + ", ".join(canary))
        if len(canary) == 1:
            return group, group.p_value < SUSPICIOUS_P, each
        # Every server on the new release (the end of a rollout): no baseline to hold the group to, only
        # each server to the others below.
        peers_only = baseline_traffic.responses == 0
        if peers_only:
            if group.canary.responses >= policy.min_responses:
                counted = describe("canary " + ", ".join(canary), group.canary)
                reason = f"{counted}: no server worse than the others"
                group = dataclasses.replace(group, verdict=PASS, reason=reason)
            elif group.verdict == FAIL:
                group = dataclasses.replace(group, verdict=INCONCLUSIVE)
        elif group.verdict == FAIL:
            return group, True, each
        suspicious = not peers_only and group.p_value < SUSPICIOUS_P
        failed, leaning = self._judge_each(each, baseline_traffic)
        if failed is not None:
            return failed, True, each
        return group, suspicious or leaning, each

    def _judge_each(self, each: dict[str, Traffic], baseline_traffic: Traffic) -> tuple[Verdict | None, bool]:
        """One bad host among many healthy ones hardly moves the group's share: each server is judged on
        its own too, against the baseline and the other canaries, at a confidence shared among them
        (Bonferroni), so that judging more servers does not alarm more. The first server that fails, and
        whether any leans towards worse."""
        policy = self.request.policy
        alpha = (1.0 - policy.confidence) / len(each)
        alone = dataclasses.replace(policy, confidence=1.0 - alpha)
        suspicious = False
        everyone = baseline_traffic
        for traffic in each.values():
            everyone = everyone + traffic
        for server, traffic in each.items():
            verdict = judge(traffic, everyone - traffic, alone, f"canary {server}")
            if verdict.verdict == FAIL:
                return verdict, True
            suspicious = suspicious or verdict.p_value < SUSPICIOUS_P
        return None, suspicious

    def _cleared(self, traffic: Traffic) -> bool:
        """A held server has had its responses, and its error share is below clear_below at the
        baseline's confidence (about 22 responses without an error for 10%)."""
        if traffic.responses < self.request.min_server_responses:
            return False
        if self.request.clear_below is None:
            return True
        bound = binomial_upper_bound(traffic.errors, traffic.responses, BASELINE_CONFIDENCE)
        return bound < self.request.clear_below / 100

    def _outcome(
        self,
        verdict: Verdict,
        *,
        canary: tuple[str, ...],
        baseline: tuple[str, ...],
        latest: Read,
        looks: int,
        elapsed: float,
    ) -> dict[str, t.Any]:
        result: dict[str, t.Any] = {"changed": False, **verdict.as_dict()}
        result["canary"]["servers"] = list(canary)
        result["baseline"]["servers"] = list(baseline)
        servers = latest.entries(self.request.return_servers)
        result.update(looks=looks, elapsed=round(elapsed, 3), servers=servers)
        if verdict.verdict == FAIL:
            raise ReleaseWorseError(verdict.reason, **result)
        if verdict.verdict == INCONCLUSIVE and canary:
            choice, bake = self.request.inconclusive, self.request.bake
            act_on_inconclusive(result, verdict.reason, choice=choice, bake=bake, analysis="release analysis")
        result["msg"] = verdict.reason  # (a failure's msg is its error's message)
        return result


def analyse_release(
    params: dict[str, t.Any], check_mode: bool = False, diff: bool = False
) -> dict[str, t.Any]:
    """release_analysis: read-only, so check mode runs it in full."""
    request = AnalysisRequest.from_params(params)
    balancers = [RuntimeApiClient(address, timeout=params["timeout"]) for address in params["socket"]]
    return ReleaseAnalysis(balancers, request).run()


TASK = TaskInterface("fleet.rollout.release_analysis", ANALYSIS_ARGUMENT_SPEC, analyse_release)
