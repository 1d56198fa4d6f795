# Private to this collection: not a public API, may change without notice.
"""The logic of fleet.rollout.prometheus_analysis: an instant query, polled, judged by a condition.

Everything here is plain Python: the HTTP GET, the clock and the sleep are injected, and so is the
condition (the action plugin evaluates it with Ansible's templar), so the polling is tested without
Ansible, without a Prometheus and without waiting. Only ``requests_get`` needs the ``requests`` library,
imported when it is called.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import time
import typing as t
from urllib.parse import urlsplit, urlunsplit

from ansible_collections.fleet.rollout.plugins.module_utils._errors import (
    ConnectionFailedError,
    InvalidInputError,
    MissingRequirementError,
    ReleaseWorseError,
)
from ansible_collections.fleet.rollout.plugins.module_utils._poll import poll_until
from ansible_collections.fleet.rollout.plugins.module_utils._verdict import (
    FAIL,
    INCONCLUSIVE,
    INCONCLUSIVE_OPTION,
    PASS,
    WARN,
    act_on_inconclusive,
)

ARGUMENT_SPEC: dict[str, dict[str, t.Any]] = {
    "url": {"type": "str", "required": True},
    "query": {"type": "str", "required": True},
    "condition": {"type": "str", "required": True},
    "bake": {"type": "float", "default": 0},
    "interval": {"type": "float", "default": 5},
    "failure_limit": {"type": "int", "default": 0},
    "inconclusive": INCONCLUSIVE_OPTION,
    "timeout": {"type": "float", "default": 5},
    "validate_certs": {"type": "bool", "default": True},
    "headers": {"type": "dict", "default": {}, "no_log": True},
}

MIN_INTERVAL = 0.1
QUERY_PATH = "/api/v1/query"
BODY_EXCERPT = 200


@dataclasses.dataclass(frozen=True)
class HttpAnswer:
    status: int
    body: str


# (url, query parameters) -> the answer; raises ConnectionFailedError when there is none.
HttpGet = t.Callable[[str, dict[str, str]], HttpAnswer]
# (result, value) -> whether the measurement is good; raises InvalidInputError when it cannot say.
Condition = t.Callable[[list[dict[str, t.Any]], float | None], bool]


@dataclasses.dataclass(frozen=True)
class Sample:
    """One series of an instant vector (or a scalar, with no labels). NaN (a 0/0 ratio: no traffic) is
    None, a value that is not there."""

    metric: dict[str, str]
    value: float | None

    def as_dict(self) -> dict[str, t.Any]:
        return {"metric": dict(self.metric), "value": self.value}


@dataclasses.dataclass(frozen=True)
class Measurement:
    at: float
    value: float | None
    ok: bool
    samples: tuple[Sample, ...]

    def as_dict(self) -> dict[str, t.Any]:
        return {"at": round(self.at, 3), "value": self.value, "ok": self.ok}


def display_url(url: str) -> str:
    """The URL as messages show it: a password in it is masked."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def seconds(name: str, value: t.Any, minimum: float, inclusive: bool = True) -> float:
    """``value`` as a number of seconds of at least (or more than) ``minimum``, or InvalidInputError."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value >= minimum if inclusive else value > minimum)
    if not ok:
        expected = f"{minimum:g} or more" if inclusive else f"more than {minimum:g}"
        raise InvalidInputError(
            f"{name} must be a number of seconds ({expected}), got {value!r}", **{name: value}
        )
    return float(value)


@dataclasses.dataclass(frozen=True)
class PrometheusRequest:
    url: str
    query: str
    condition: str
    bake: float
    interval: float
    failure_limit: int
    inconclusive: str
    timeout: float
    validate_certs: bool
    headers: dict[str, str]

    @classmethod
    def from_params(cls, params: t.Mapping[str, t.Any]) -> PrometheusRequest:
        url = params["url"]
        parts = urlsplit(url.strip()) if isinstance(url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            shown = display_url(url) if isinstance(url, str) else url
            raise InvalidInputError(
                f"url must be the http:// or https:// base URL of a Prometheus server, got {shown!r}",
                url=shown,
            )
        if parts.query or parts.fragment:
            raise InvalidInputError(
                f"url must be Prometheus's base URL, without a query or a fragment, got {display_url(url)!r}",
                url=display_url(url),
            )
        for name in ("query", "condition"):
            if not isinstance(params[name], str) or not params[name].strip():
                raise InvalidInputError(
                    f"{name} must not be empty, got {params[name]!r}", **{name: params[name]}
                )
        failure_limit = params["failure_limit"]
        if isinstance(failure_limit, bool) or not isinstance(failure_limit, int) or failure_limit < 0:
            raise InvalidInputError(
                f"failure_limit must be a count of failed measurements (0 or more), got {failure_limit!r}",
                failure_limit=failure_limit,
            )
        if params["inconclusive"] not in (PASS, WARN, FAIL):
            raise InvalidInputError(
                f"inconclusive must be pass, warn or fail, got {params['inconclusive']!r}"
            )
        headers = params["headers"] or {}
        if not isinstance(headers, dict):
            raise InvalidInputError("headers must be a dict of header names and values")
        for name, value in headers.items():
            # the values are secrets (a bearer token): never in a message
            if not isinstance(name, str) or not name.strip() or not isinstance(value, str):
                raise InvalidInputError(f"headers must map header names to strings; header {name!r} does not")
        return cls(
            url=url.strip().rstrip("/"),
            query=params["query"].strip(),
            condition=params["condition"].strip(),
            bake=seconds("bake", params["bake"], 0),
            interval=seconds("interval", params["interval"], MIN_INTERVAL),
            failure_limit=failure_limit,
            inconclusive=params["inconclusive"],
            timeout=seconds("timeout", params["timeout"], 0, inclusive=False),
            validate_certs=bool(params["validate_certs"]),
            headers=dict(headers),
        )


class PrometheusClient:
    """Instant queries against Prometheus's HTTP API at ``url`` (its base URL)."""

    def __init__(self, url: str, get: HttpGet) -> None:
        self.url = url.rstrip("/")
        self.get = get

    def instant_query(self, query: str) -> list[Sample]:
        where = f"Prometheus at {display_url(self.url)}"
        answer = self.get(self.url + QUERY_PATH, {"query": query})
        try:
            document = json.loads(answer.body)
        except ValueError:
            document = None
        if not isinstance(document, dict) or "status" not in document:
            excerpt = " ".join(answer.body.split())[:BODY_EXCERPT]
            raise ConnectionFailedError(
                f"{where} answered HTTP {answer.status}, not with Prometheus's API: {excerpt!r}",
                url=display_url(self.url),
                query=query,
                http_status=answer.status,
            )
        if document["status"] != "success" or answer.status != 200:
            kind, error = document.get("errorType", ""), document.get("error", "")
            said = f"{kind}: {error}" if kind else str(error or document)
            details = {"url": display_url(self.url), "query": query, "http_status": answer.status}
            if answer.status in (400, 422):  # bad_data, execution: the query itself is wrong
                raise InvalidInputError(
                    f"{where} refused the query {query!r}: {said} (HTTP {answer.status})",
                    prometheus_error=error,
                    **details,
                )
            raise ConnectionFailedError(
                f"{where} answered an error to the query {query!r}: {said} (HTTP {answer.status})",
                prometheus_error=error,
                **details,
            )
        return parse_data(document.get("data"), query, where)


def parse_data(data: t.Any, query: str, where: str) -> list[Sample]:
    """The samples of an instant query's ``data``: a vector's series, or a scalar as one sample."""
    kind = data.get("resultType") if isinstance(data, dict) else None
    try:
        if kind == "vector":
            return [
                Sample({str(k): str(v) for k, v in item["metric"].items()}, number(item["value"][1]))
                for item in data["result"]
            ]
        if kind == "scalar":
            return [Sample({}, number(data["result"][1]))]
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise ConnectionFailedError(
            f"{where} answered the query {query!r} with data that is not a {kind}: {exc!r}", query=query
        ) from exc
    hint = " (a range vector: take its rate() or another function of it)" if kind == "matrix" else ""
    raise InvalidInputError(
        f"the query {query!r} gives a {kind}{hint}; the condition needs an instant vector or a scalar",
        query=query,
        result_type=kind,
    )


def number(text: t.Any) -> float | None:
    value = float(text)  # Prometheus sends values as strings: "0.2", "NaN", "+Inf"
    return None if math.isnan(value) else value


def show(value: float | None) -> str:
    return "none" if value is None else f"{value:.4g}"


def show_samples(samples: t.Sequence[Sample], limit: int = 3) -> str:
    if not samples:
        return "no sample"
    shown = [
        "{" + ", ".join(f"{k}={v!r}" for k, v in s.metric.items()) + "} " + show(s.value)
        for s in samples[:limit]
    ]
    more = f", and {len(samples) - limit} more" if len(samples) > limit else ""
    return f"{len(samples)} sample{'s' if len(samples) > 1 else ''}: " + ", ".join(shown) + more


class PrometheusAnalysis:
    """Queries every ``interval`` seconds until the condition was false more than ``failure_limit``
    times (the task fails at once) or the bake is over (it passes, or is inconclusive without a value)."""

    def __init__(
        self,
        client: PrometheusClient,
        request: PrometheusRequest,
        condition: Condition,
        clock: t.Callable[[], float] = time.time,
        sleep: t.Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.request = request
        self.condition = condition
        self.clock = clock
        self.sleep = sleep

    def run(self) -> dict[str, t.Any]:
        request = self.request
        started = self.clock()
        deadline = started + request.bake
        measurements: list[Measurement] = []

        def measure() -> bool:
            at = self.clock()
            samples = self.client.instant_query(request.query)
            value = samples[0].value if samples else None
            ok = self.condition([s.as_dict() for s in samples], value)
            measurements.append(Measurement(at, value, bool(ok), tuple(samples)))
            failures = sum(1 for m in measurements if not m.ok)
            if failures > request.failure_limit:
                reason = (
                    f"condition {request.condition!r} false at measurement {len(measurements)} "
                    f"({failures} false, failure_limit {request.failure_limit}) of {request.query!r} "
                    f"on {display_url(request.url)}: value {show(value)} ({show_samples(samples)})"
                )
                raise ReleaseWorseError(reason, **self._outcome(FAIL, reason, measurements, started))
            return False  # measured until the bake is over

        poll_until(measure, deadline, request.interval, self.clock, self.sleep, land_on_deadline=True)
        return self._finish(measurements, started)

    def _finish(self, measurements: list[Measurement], started: float) -> dict[str, t.Any]:
        request = self.request
        elapsed = self.clock() - started
        count = len(measurements)
        over = f"{count} measurement{'s' if count > 1 else ''} of {request.query!r} over {elapsed:.1f}s"
        if all(m.value is None for m in measurements):
            reason = f"no sample with a value in {over}"
            result = self._outcome(INCONCLUSIVE, reason, measurements, started)
            choice, bake = request.inconclusive, request.bake
            act_on_inconclusive(result, reason, choice=choice, bake=bake, analysis="prometheus analysis")
            return result
        failures = sum(1 for m in measurements if not m.ok)
        reason = (
            f"condition {request.condition!r} held in {count - failures} of {over} "
            f"(failure_limit {request.failure_limit}); last value {show(measurements[-1].value)}"
        )
        return self._outcome(PASS, reason, measurements, started)

    def _outcome(
        self, verdict: str, reason: str, measurements: list[Measurement], started: float
    ) -> dict[str, t.Any]:
        last = measurements[-1]
        return {
            "changed": False,
            "verdict": verdict,
            "reason": reason,
            "url": display_url(self.request.url),
            "query": self.request.query,
            "condition": self.request.condition,
            "value": last.value,
            "samples": [s.as_dict() for s in last.samples],
            "failures": sum(1 for m in measurements if not m.ok),
            "measurements": [m.as_dict() for m in measurements],
            "elapsed": round(self.clock() - started, 3),
        }


ERRNO_REASON = re.compile(r"\[Errno -?\d+\] ([^'\")]+)")


def requests_get(headers: dict[str, str], timeout: float, validate_certs: bool) -> HttpGet:
    """An HttpGet over ``requests`` (one session, so connections are reused between measurements)."""
    try:
        import requests  # noqa: PLC0415 - optional: only this task needs it, on the controller
    except ImportError as exc:
        raise MissingRequirementError(
            "fleet.rollout.prometheus_analysis needs the Python library requests on the controller "
            "(pip install requests in the environment that runs ansible-playbook)"
        ) from exc
    session = requests.Session()
    session.headers.update(headers)

    def get(url: str, params: dict[str, str]) -> HttpAnswer:
        base = display_url(url.rsplit(QUERY_PATH, 1)[0])
        try:
            answer = session.get(url, params=params, timeout=timeout, verify=validate_certs)
        except requests.Timeout as exc:
            raise ConnectionFailedError(
                f"Prometheus at {base} did not answer within {timeout:g}s", url=base, timed_out=True
            ) from exc
        except requests.RequestException as exc:
            found = ERRNO_REASON.search(str(exc))
            reason = found.group(1).strip() if found else f"{type(exc).__name__}: {exc}"
            raise ConnectionFailedError(
                f"Prometheus at {base} did not answer: {reason}", url=base, timed_out=False
            ) from exc
        return HttpAnswer(answer.status_code, answer.text)

    return get


def analyse(
    params: t.Mapping[str, t.Any],
    condition: Condition,
    get: HttpGet | None = None,
    clock: t.Callable[[], float] = time.time,
    sleep: t.Callable[[float], None] = time.sleep,
) -> dict[str, t.Any]:
    """prometheus_analysis: read-only, so check mode runs it in full."""
    request = PrometheusRequest.from_params(params)
    http = get or requests_get(request.headers, request.timeout, request.validate_certs)
    return PrometheusAnalysis(PrometheusClient(request.url, http), request, condition, clock, sleep).run()
