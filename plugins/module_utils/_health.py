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
import http.client
import json
import re
import socket
import time
import traceback
import typing as t
import urllib.error
from collections import deque

from ansible.module_utils.urls import ConnectionError as UrlConnectionError
from ansible.module_utils.urls import open_url
from ansible_collections.fleet.rollout.plugins.module_utils._errors import (
    ConnectionFailedError,
    HealthCheckFailedError,
    InvalidInputError,
)

try:
    import jmespath

    HAS_JMESPATH = True
    JMESPATH_IMPORT_ERROR: str | None = None
except ImportError:
    HAS_JMESPATH = False
    JMESPATH_IMPORT_ERROR = traceback.format_exc()

MAX_BODY_BYTES = 1024 * 1024  # what body_regex and json_query see; a health page is small
EXCERPT_CHARS = 200
OBSERVATIONS_KEPT = 10  # the last few attempts are evidence enough; a long poll must not flood the result
# socket.timeout is not TimeoutError before Python 3.10; module code also runs on 3.7 targets.
TIMEOUT_ERRORS = (socket.timeout, TimeoutError)


@dataclasses.dataclass(frozen=True)
class HttpRequest:
    url: str
    method: str
    headers: dict[str, str]
    timeout: float
    validate_certs: bool
    ca_path: str | None


@dataclasses.dataclass(frozen=True)
class HttpResponse:
    """Any answer with a status code, 5xx included; only a failure to get an answer raises."""

    status: int
    body: bytes


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


class OpenUrlFetch:
    """HttpFetch on ansible.module_utils.urls.open_url, which works on the managed host and the controller."""

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            response = open_url(
                request.url,
                method=request.method,
                headers=request.headers,
                timeout=request.timeout,
                validate_certs=request.validate_certs,
                ca_path=request.ca_path,
                http_agent="fleet.rollout-health_check",
            )
            try:
                return HttpResponse(status=int(response.status), body=response.read(MAX_BODY_BYTES))
            finally:
                response.close()
        except urllib.error.HTTPError as exc:
            # A 4xx/5xx is an answer: its status and body are what the check compares.
            try:
                body = exc.read(MAX_BODY_BYTES)
            except (OSError, http.client.HTTPException):
                body = b""
            return HttpResponse(status=exc.code, body=body)
        except urllib.error.URLError as exc:
            raise ConnectionFailedError(
                f"{request.url}: {exc.reason}",
                url=request.url,
                timed_out=isinstance(exc.reason, TIMEOUT_ERRORS),
            ) from exc
        except (OSError, http.client.HTTPException, UrlConnectionError) as exc:
            raise ConnectionFailedError(
                f"{request.url}: {exc}", url=request.url, timed_out=isinstance(exc, TIMEOUT_ERRORS)
            ) from exc


def parse_tcp_target(value: str) -> tuple[str, int]:
    """``host:port`` or ``[v6-address]:port``."""
    host, sep, port = value.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidInputError(
            f"tcp must be host:port with a port from 1 to 65535, got {value!r}", tcp=value
        )
    return host, int(port)


def excerpt_of(body: bytes) -> str:
    """The start of a body as one line of text, short enough for a failure message."""
    text = " ".join(body[: EXCERPT_CHARS * 4].decode("utf-8", "replace").split())
    return text if len(text) <= EXCERPT_CHARS else text[: EXCERPT_CHARS - 3] + "..."


def same_json_value(got: t.Any, want: t.Any) -> bool:
    # Python says True == 1; a health check that expects true must not pass on 1.
    if isinstance(got, bool) or isinstance(want, bool):
        return isinstance(got, bool) and isinstance(want, bool) and got is want
    return bool(got == want)


class ResponseChecks:
    """The compiled expectations for an HTTP answer: status, body_regex, json_query/json_expect."""

    def __init__(
        self,
        status: tuple[int, ...],
        body_regex: re.Pattern[str] | None,
        json_query: t.Any,
        json_expect: t.Any,
    ) -> None:
        self.status = status
        self.body_regex = body_regex
        self.json_query = json_query
        self.json_expect = json_expect

    def mismatch(self, response: HttpResponse) -> str | None:
        """Why this response is not healthy, or None when it is."""
        if response.status not in self.status:
            return f"status {response.status} is not one of {list(self.status)}"
        text = response.body.decode("utf-8", "replace")
        if self.body_regex is not None and not self.body_regex.search(text):
            return f"body does not match {self.body_regex.pattern!r}"
        if self.json_query is not None:
            try:
                document = json.loads(text)
            except ValueError as exc:
                return f"body is not JSON ({exc})"
            got = self.json_query.search(document)
            if not same_json_value(got, self.json_expect):
                return (
                    f"json_query {self.json_query.expression!r} gave {got!r}, expected {self.json_expect!r}"
                )
        return None


class HealthProbe:
    """Polls until ``successes`` healthy answers in a row that stay healthy for ``stable_for`` seconds.

    Fails at ``deadline``, or as soon as ``failure_threshold`` attempts in a row were definitive failures
    (0: never early). Any attempt that is not a definitive failure (healthy, warming, inconclusive) ends
    such a run.
    """

    def __init__(
        self,
        spec: HealthCheckSpec,
        fetch: HttpFetch | None = None,
        connect: TcpConnect = tcp_connect,
        clock: t.Callable[[], float] = time.monotonic,
        sleep: t.Callable[[float], None] = time.sleep,
    ) -> None:
        self.spec = spec
        self.fetch = fetch
        self.connect = connect
        self.clock = clock
        self.sleep = sleep

    def run(self) -> dict[str, t.Any]:
        """Probe until healthy (return what was seen), or until the deadline or ``failure_threshold``
        definitive failures in a row (raise HealthCheckFailedError, ``failed_fast`` saying which)."""
        observe = self._observer()
        spec = self.spec
        start = self.clock()
        end = start + spec.deadline
        seen: deque[Observation] = deque(maxlen=OBSERVATIONS_KEPT)
        streak = 0
        streak_began = start
        answered = False  # the target gave any answer (an HTTP status, a TCP connection) in this check
        failures = 0  # definitive failures in a row
        attempt = 0
        while True:
            attempt += 1
            began = self.clock()
            if began >= end:  # a sleep that overslept the deadline (a loaded machine): no attempt after it
                raise self._failure(attempt - 1, began - start, streak, list(seen))
            observation = observe(attempt, began - start, min(spec.timeout, end - began))
            answered = answered or observation.healthy or observation.status is not None
            if self.definitive(observation, answered):
                observation = dataclasses.replace(observation, definitive=True)
                failures += 1
            else:
                failures = 0
            seen.append(observation)
            now = self.clock()
            if spec.failure_threshold and failures >= spec.failure_threshold:
                raise self._failed_fast(attempt, now - start, failures, answered, list(seen))
            if observation.healthy:
                streak_began = began if streak == 0 else streak_began
                streak += 1
                if streak >= spec.successes and now - streak_began >= spec.stable_for:
                    return {
                        "attempts": attempt,
                        "seconds_to_healthy": round(now - start, 3),
                        "status": observation.status,
                        "excerpt": observation.excerpt,
                        "observations": [o.to_dict() for o in seen],
                    }
            else:
                streak = 0
            # An attempt only starts before the deadline; sleeping past it would prove nothing.
            if now + spec.interval >= end:
                raise self._failure(attempt, now - start, streak, list(seen))
            self.sleep(spec.interval)

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
            return self._no_answer(exc, attempt, at, began)
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

    def _no_answer(self, exc: ConnectionFailedError, attempt: int, at: float, began: float) -> Observation:
        return Observation(
            attempt,
            at,
            self.clock() - began,
            healthy=False,
            error=exc.message,
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


# The module's interface, here so that the controller-side action plugin validates and runs the same.
ARGUMENT_SPEC: dict[str, dict[str, t.Any]] = dict(
    url=dict(type="str"),
    tcp=dict(type="str"),
    method=dict(type="str", default="GET"),
    headers=dict(type="dict"),
    status=dict(type="list", elements="int", default=[200]),
    body_regex=dict(type="str"),
    json_query=dict(type="str"),
    json_expect=dict(type="raw"),
    validate_certs=dict(type="bool", default=True),
    ca_path=dict(type="path"),
    successes=dict(type="int", default=1),
    stable_for=dict(type="float", default=0),
    interval=dict(type="float", default=0.5),
    timeout=dict(type="float", default=5),
    deadline=dict(type="float", default=60),
    failure_threshold=dict(type="int", default=3),
    warming_status=dict(type="list", elements="int", default=[503]),
    startup_grace=dict(type="float", default=10),
)
SPEC_CONSTRAINTS: dict[str, t.Any] = dict(
    mutually_exclusive=[("url", "tcp")],
    required_one_of=[("url", "tcp")],
    required_together=[("json_query", "json_expect")],
)


def check_health(params: dict[str, t.Any], check_mode: bool = False, diff: bool = False) -> dict[str, t.Any]:
    """Run the probe the validated params describe; a health check never changes anything."""
    spec = HealthCheckSpec(
        **{
            name: params[name]
            for name in ARGUMENT_SPEC
            if name not in ("headers", "status", "warming_status")
        },
        headers={str(k): str(v) for k, v in (params["headers"] or {}).items()},
        status=tuple(params["status"]),
        warming_status=tuple(params["warming_status"]),
    )
    return dict(changed=False, **HealthProbe(spec, fetch=OpenUrlFetch()).run())
