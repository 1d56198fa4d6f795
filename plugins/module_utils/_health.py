# Private to this collection: not a public API, may change without notice.
"""The health probe: poll an HTTP(S) URL or a TCP port until it is healthy, and say what was seen.

It fails fast when the target is plainly broken: ``failure_threshold`` definitive failures in a row (see
HealthProbe.definitive) end the check before its deadline.

The probe never touches AnsibleModule: the HTTP fetch, the TCP connect, the clock and the sleep are
injected, so the same class runs inside the health_check module on the managed host and, later, from an
action plugin on the controller.
"""

from __future__ import annotations

import dataclasses
import re
import socket
import time
import traceback
import typing as t
from collections import deque

from ansible_collections.fleet.rollout.plugins.module_utils._errors import (
    ConnectionFailedError,
    HealthCheckFailedError,
    InvalidInputError,
)
from ansible_collections.fleet.rollout.plugins.module_utils._health_response import ResponseChecks, excerpt_of
from ansible_collections.fleet.rollout.plugins.module_utils._http import (
    TIMEOUT_ERRORS,
    HttpRequest,
    HttpResponse,
)
from ansible_collections.fleet.rollout.plugins.module_utils._poll import Clock, Sleep, poll_until
from ansible_collections.fleet.rollout.plugins.module_utils._validate import split_host_port

try:
    import jmespath

    HAS_JMESPATH = True
    JMESPATH_IMPORT_ERROR: str | None = None
except ImportError:
    HAS_JMESPATH = False
    JMESPATH_IMPORT_ERROR = traceback.format_exc()

OBSERVATIONS_KEPT = 10  # the last few attempts are evidence enough; a long poll must not flood the result
# Return the response, or raise ConnectionFailedError when there is none. (A Callable rather than a
# typing.Protocol, which is Python 3.8+: module code also runs on 3.7 targets.)
HttpFetch = t.Callable[[HttpRequest], HttpResponse]


TcpConnect = t.Callable[[str, int, float], None]


@dataclasses.dataclass(frozen=True)
class HealthCheckSpec:
    """What to probe and when it counts as healthy; the module's parameters, one to one."""

    url: str | None = None
    tcp: str | None = None
    method: str = "GET"
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    status: tuple[int, ...] = (200,)
    body_regex: str | None = None
    json_query: str | None = None
    json_expect: t.Any = None
    validate_certs: bool = True
    ca_path: str | None = None
    successes: int = 1
    stable_for: float = 0.0
    interval: float = 0.5
    timeout: float = 5.0
    deadline: float = 60.0
    failure_threshold: int = 3
    warming_status: tuple[int, ...] = (503,)
    startup_grace: float = 10.0

    @property
    def target(self) -> str:
        return self.url or f"tcp://{self.tcp}"


@dataclasses.dataclass(frozen=True)
class Observation:
    """One attempt: when it began (seconds into the check), what came back, why it was not healthy, and
    whether that failure was definitive (counted towards failure_threshold)."""

    attempt: int
    at: float
    duration: float
    healthy: bool
    status: int | None = None
    error: str | None = None
    excerpt: str = ""
    definitive: bool = False
    timed_out: bool = False  # no answer within the attempt's timeout (rather than refused or unreachable)

    def to_dict(self) -> dict[str, t.Any]:
        data = dataclasses.asdict(self)
        data["at"] = round(self.at, 3)
        data["duration"] = round(self.duration, 3)
        del data["timed_out"]  # the error says so; the result keeps the documented keys
        return data


def tcp_connect(host: str, port: int, timeout: float) -> None:
    """Open a TCP connection and close it at once; a refused or timed-out connect raises."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        raise ConnectionFailedError(
            f"TCP connect to {host}:{port} failed: {exc}",
            host=host,
            port=port,
            timed_out=isinstance(exc, TIMEOUT_ERRORS),
        ) from exc


def parse_tcp_target(value: str) -> tuple[str, int]:
    """``host:port`` or ``[v6-address]:port``."""
    host_port = split_host_port(value)
    if host_port is None:
        raise InvalidInputError(
            f"tcp must be host:port with a port from 1 to 65535, got {value!r}", tcp=value
        )
    return host_port


@dataclasses.dataclass
class _ProbeRun:
    """What one health check has seen so far."""

    start: float
    attempts: int = 0
    streak: int = 0  # healthy attempts in a row
    streak_began: float = 0.0
    answered: bool = False  # the target gave any answer (an HTTP status, a TCP connection) in this check
    failures: int = 0  # definitive failures in a row
    seen: deque[Observation] = dataclasses.field(default_factory=lambda: deque(maxlen=OBSERVATIONS_KEPT))


@dataclasses.dataclass
class HealthProbe:
    """Polls until ``successes`` healthy answers in a row that stay healthy for ``stable_for`` seconds.

    Fails at ``deadline``, or as soon as ``failure_threshold`` attempts in a row were definitive failures
    (0: never early). Any attempt that is not a definitive failure (healthy, warming, inconclusive) ends
    such a run.
    """

    spec: HealthCheckSpec
    fetch: HttpFetch | None = None
    connect: TcpConnect = tcp_connect
    clock: Clock = time.monotonic
    sleep: Sleep = time.sleep

    def run(self) -> dict[str, t.Any]:
        """Probe until healthy (return what was seen), or until the deadline or ``failure_threshold``
        definitive failures in a row (raise HealthCheckFailedError, ``failed_fast`` saying which)."""
        observe = self._observer()
        spec = self.spec
        run = _ProbeRun(start=self.clock())
        end = run.start + spec.deadline

        def attempt() -> bool:
            run.attempts += 1
            began = self.clock()
            observation = observe(run.attempts, began - run.start, min(spec.timeout, end - began))
            run.answered = run.answered or observation.healthy or observation.status is not None
            if self.definitive(observation, run.answered):
                observation = dataclasses.replace(observation, definitive=True)
                run.failures += 1
            else:
                run.failures = 0
            run.seen.append(observation)
            now = self.clock()
            if spec.failure_threshold and run.failures >= spec.failure_threshold:
                raise self._failed_fast(
                    run.attempts, now - run.start, run.failures, run.answered, list(run.seen)
                )
            if not observation.healthy:
                run.streak = 0
                return False
            run.streak_began = began if run.streak == 0 else run.streak_began
            run.streak += 1
            return run.streak >= spec.successes and now - run.streak_began >= spec.stable_for

        if not poll_until(attempt, end, spec.interval, self.clock, self.sleep, within_deadline=True):
            raise self._failure(run.attempts, self.clock() - run.start, run.streak, list(run.seen))
        last = run.seen[-1]
        return {
            "attempts": run.attempts,
            "seconds_to_healthy": round(self.clock() - run.start, 3),
            "status": last.status,
            "excerpt": last.excerpt,
            "observations": [o.to_dict() for o in run.seen],
        }

    def definitive(self, observation: Observation, answered: bool) -> bool:
        """Whether a failed attempt shows the target broken, rather than not ready yet.

        An answer is definitive when its status is expected but its body is wrong, or when its status is
        neither expected nor one of ``warming_status``. No answer at all is definitive once the target has
        answered in this check (it answered, then died) or once ``startup_grace`` has passed; a timeout
        (perhaps a slow start) only once ``startup_grace`` has passed.
        """
        spec = self.spec
        if observation.healthy:
            return False
        if observation.status is not None:
            return observation.status in spec.status or observation.status not in spec.warming_status
        past_grace = observation.at >= spec.startup_grace
        if observation.timed_out:
            return past_grace
        return answered or past_grace

    def _observer(self) -> t.Callable[[int, float, float], Observation]:
        """Validate the spec and return the function that makes one attempt."""
        spec = self.spec
        if (spec.url is None) == (spec.tcp is None):
            raise InvalidInputError("exactly one of url and tcp is required", url=spec.url, tcp=spec.tcp)
        self._validate_timing()
        if spec.tcp is not None:
            http_only = [
                name for name in ("headers", "body_regex", "json_query", "ca_path") if getattr(spec, name)
            ]
            if http_only:
                raise InvalidInputError(
                    f"{', '.join(http_only)} only apply to url checks, not tcp", tcp=spec.tcp
                )
            host, port = parse_tcp_target(spec.tcp)
            return lambda attempt, at, timeout: self._observe_tcp(host, port, attempt, at, timeout)
        checks = self._response_checks()
        return lambda attempt, at, timeout: self._observe_http(checks, attempt, at, timeout)

    def _validate_timing(self) -> None:
        spec = self.spec
        problems = []
        if spec.successes < 1:
            problems.append(f"successes must be at least 1, got {spec.successes}")
        if spec.interval < 0:
            problems.append(f"interval must not be negative, got {spec.interval}")
        if spec.timeout <= 0 or spec.deadline <= 0:
            problems.append(f"timeout and deadline must be positive, got {spec.timeout} and {spec.deadline}")
        if not 0 <= spec.stable_for < spec.deadline:
            problems.append(
                f"stable_for must be at least 0 and below deadline ({spec.deadline}), got {spec.stable_for}"
            )
        if spec.failure_threshold < 0:
            problems.append(
                f"failure_threshold must be 0 (never fail early) or more, got {spec.failure_threshold}"
            )
        if spec.startup_grace < 0:
            problems.append(f"startup_grace must not be negative, got {spec.startup_grace}")
        if problems:
            raise InvalidInputError("; ".join(problems))

    def _response_checks(self) -> ResponseChecks:
        spec = self.spec
        url = spec.url or ""
        if not url.lower().startswith(("http://", "https://")):
            raise InvalidInputError(f"url must start with http:// or https://, got {url!r}", url=url)
        bad_status = [code for code in spec.status if not 100 <= code <= 599]
        if not spec.status or bad_status:
            raise InvalidInputError(f"status must list HTTP codes from 100 to 599, got {list(spec.status)}")
        bad_warming = [code for code in spec.warming_status if not 100 <= code <= 599]
        if bad_warming:
            raise InvalidInputError(
                f"warming_status must list HTTP codes from 100 to 599, got {list(spec.warming_status)}"
            )
        body_regex = None
        if spec.body_regex is not None:
            try:
                body_regex = re.compile(spec.body_regex)
            except re.error as exc:
                raise InvalidInputError(
                    f"body_regex {spec.body_regex!r} is not a regular expression: {exc}"
                ) from exc
        query = None
        if spec.json_query is not None:
            if not HAS_JMESPATH:
                raise InvalidInputError("json_query needs the Python library jmespath where the check runs")
            try:
                query = jmespath.compile(spec.json_query)
            except jmespath.exceptions.JMESPathError as exc:
                raise InvalidInputError(
                    f"json_query {spec.json_query!r} is not a JMESPath expression: {exc}"
                ) from exc
        return ResponseChecks(tuple(spec.status), body_regex, query, spec.json_expect)

    def _observe_http(self, checks: ResponseChecks, attempt: int, at: float, timeout: float) -> Observation:
        if self.fetch is None:
            raise InvalidInputError("an HTTP fetch function is needed to check a url")
        spec = self.spec
        request = HttpRequest(
            url=spec.url or "",
            method=spec.method.upper(),
            headers=dict(spec.headers),
            timeout=timeout,
            validate_certs=spec.validate_certs,
            ca_path=spec.ca_path,
        )
        began = self.clock()
        try:
            response = self.fetch(request)
        except ConnectionFailedError as exc:
            return self._no_answer(exc, attempt, at, began, self._late_answer(exc, timeout))
        mismatch = checks.mismatch(response)
        return Observation(
            attempt,
            at,
            self.clock() - began,
            healthy=mismatch is None,
            status=response.status,
            error=mismatch,
            excerpt=excerpt_of(response.body),
        )

    def _observe_tcp(self, host: str, port: int, attempt: int, at: float, timeout: float) -> Observation:
        began = self.clock()
        try:
            self.connect(host, port, timeout)
        except ConnectionFailedError as exc:
            return self._no_answer(exc, attempt, at, began)
        return Observation(attempt, at, self.clock() - began, healthy=True)

    def _late_answer(self, exc: ConnectionFailedError, timeout: float) -> str | None:
        """What to say of an answer still arriving when the attempt's time ran out, when that time was what
        was left of the deadline (the fetch only knows its own timeout); None otherwise."""
        if not exc.details.get("still_arriving") or timeout >= self.spec.timeout:
            return None
        return (
            f"{self.spec.url}: the {self.spec.deadline:g}s deadline passed while the answer was still "
            f"arriving (status {exc.details.get('status')}, {exc.details.get('received')} bytes of the body "
            "so far)"
        )

    def _no_answer(
        self, exc: ConnectionFailedError, attempt: int, at: float, began: float, error: str | None = None
    ) -> Observation:
        return Observation(
            attempt,
            at,
            self.clock() - began,
            healthy=False,
            error=error or exc.message,
            timed_out=bool(exc.details.get("timed_out")),
        )

    def _failure(
        self, attempts: int, elapsed: float, streak: int, seen: list[Observation]
    ) -> HealthCheckFailedError:
        spec = self.spec
        last = seen[-1]
        if last.healthy:
            # Healthy at the end, but not long enough: say how far it got.
            verdict = f"healthy {streak} time(s) in a row, needed {spec.successes} over {spec.stable_for:g}s"
        else:
            verdict = last.error or "not healthy"
        message = (
            f"health check of {spec.target} failed: not healthy within {spec.deadline:g}s "
            f"({attempts} attempts); last attempt: {self._last_attempt(last, verdict)}"
        )
        return self._error(message, attempts, elapsed, seen, failed_fast=False)

    def _failed_fast(
        self, attempts: int, elapsed: float, failures: int, answered: bool, seen: list[Observation]
    ) -> HealthCheckFailedError:
        spec = self.spec
        last = seen[-1]
        if last.status is None:
            what = "no answer"
        elif last.status not in spec.status:
            expected = spec.status[0] if len(spec.status) == 1 else f"one of {list(spec.status)}"
            what = f"status {last.status}, expected {expected}"
        else:
            what = f"status {last.status}, but {last.error}"
        since = "after it had answered" if answered else f"after the {spec.startup_grace:g}s startup grace"
        message = (
            f"health check of {spec.target} failed {failures} checks in a row ({what}) {since}; "
            f"failing fast instead of waiting for the {spec.deadline:g}s deadline "
            f"({attempts} attempts in {elapsed:.1f}s); last attempt: "
            f"{self._last_attempt(last, last.error or 'not healthy')}"
        )
        return self._error(message, attempts, elapsed, seen, failed_fast=True)

    @staticmethod
    def _last_attempt(last: Observation, verdict: str) -> str:
        parts = [f"status {last.status}" if last.status is not None else "no answer", verdict]
        if last.excerpt:
            parts.append(f"body: {last.excerpt!r}")
        return "; ".join(parts)

    def _error(
        self, message: str, attempts: int, elapsed: float, seen: list[Observation], failed_fast: bool
    ) -> HealthCheckFailedError:
        last = seen[-1]
        return HealthCheckFailedError(
            message,
            target=self.spec.target,
            attempts=attempts,
            elapsed=round(elapsed, 3),
            status=last.status,
            error=last.error,
            excerpt=last.excerpt,
            failed_fast=failed_fast,
            observations=[o.to_dict() for o in seen],
        )
