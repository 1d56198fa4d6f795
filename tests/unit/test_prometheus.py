"""prometheus_analysis: the polling, failure_limit and inconclusive rules with a scripted Prometheus and a
fake clock; the answers Prometheus gives; bad input; the HTTP over requests; the condition's evaluation
with Ansible's own templar."""

from __future__ import annotations

import contextlib
import json
import sys
import time
import typing as t
import urllib.parse

import pytest
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar
from ansible_collections.fleet.rollout.plugins.module_utils._errors import (
    ConnectionFailedError,
    InvalidInputError,
    MissingRequirementError,
    ReleaseWorseError,
)
from ansible_collections.fleet.rollout.plugins.plugin_utils._condition import evaluate_condition
from ansible_collections.fleet.rollout.plugins.plugin_utils._prometheus import (
    ARGUMENT_SPEC,
    HttpAnswer,
    analyse,
    requests_get,
)

from tests.fakes.clock import FakeClock
from tests.support import QuietHandler, closed_port, serve_http

URL = "http://127.0.0.1:9090"
QUERY = 'sum(rate(haproxy_server_http_responses_total{server="app02",code="5xx"}[10s]))'
# A script entry: a number (one sample), None (no sample), "nan", or a whole answer / an exception.
Step = t.Union[float, None, str, HttpAnswer, Exception]


def vector(*values: float | str, labels: dict[str, str] | None = None) -> HttpAnswer:
    result = [{"metric": labels or {}, "value": [1.0, str(v)]} for v in values]
    body = {"status": "success", "data": {"resultType": "vector", "result": result}}
    return HttpAnswer(200, json.dumps(body))


class ScriptedPrometheus:
    """Answers each query with the next step of its script (the last one repeats); each answer takes
    ``latency`` seconds of the fake clock."""

    def __init__(self, clock: FakeClock, script: list[Step], latency: float = 0.01) -> None:
        self.clock = clock
        self.script = script
        self.latency = latency
        self.calls: list[tuple[str, dict[str, str], float]] = []

    def __call__(self, url: str, params: dict[str, str]) -> HttpAnswer:
        step = self.script[min(len(self.calls), len(self.script) - 1)]
        self.calls.append((url, params, self.clock.now))
        self.clock.now += self.latency
        if isinstance(step, Exception):
            raise step
        if isinstance(step, HttpAnswer):
            return step
        return vector() if step is None else vector(step)


def params(**overrides: t.Any) -> dict[str, t.Any]:
    values = {name: spec.get("default") for name, spec in ARGUMENT_SPEC.items()}
    values.update(url=URL, query=QUERY, condition="value is none or value < 0.05")
    values.update(overrides)
    return values


def below(limit: float) -> t.Callable[[list[dict[str, t.Any]], float | None], bool]:
    """The condition ``value is none or value < limit``, in Python (the templar's own is tested below)."""
    return lambda _result, value: value is None or value < limit


def run(
    script: list[Step], judge: t.Any = None, **overrides: t.Any
) -> tuple[dict[str, t.Any], ScriptedPrometheus, FakeClock]:
    """The analysis of ``script``; ``judge`` is the condition in Python (default: below 0.05)."""
    clock = FakeClock(1_000_000.0)
    prometheus = ScriptedPrometheus(clock, script)
    result = analyse(params(**overrides), judge or below(0.05), prometheus, clock, clock.sleep)
    return result, prometheus, clock


def failing(
    script: list[Step],
    error: type[Exception] = ReleaseWorseError,
    judge: t.Any = None,
    **overrides: t.Any,
) -> tuple[t.Any, ScriptedPrometheus]:
    """The error the analysis of ``script`` raises, and the scripted Prometheus."""
    clock = FakeClock(1_000_000.0)
    prometheus = ScriptedPrometheus(clock, script)
    with pytest.raises(error) as raised:
        analyse(params(**overrides), judge or below(0.05), prometheus, clock, clock.sleep)
    return raised.value, prometheus


# ---- the polling --------------------------------------------------------------------------------


def test_no_bake_is_one_instant_query_and_a_pass() -> None:
    result, prometheus, _clock = run([0.01])
    assert [(url, p) for url, p, _at in prometheus.calls] == [(f"{URL}/api/v1/query", {"query": QUERY})]
    assert result["verdict"] == "pass" and result["changed"] is False
    assert result["value"] == 0.01
    assert result["samples"] == [{"metric": {}, "value": 0.01}]
    assert result["measurements"] == [{"at": 1_000_000.0, "value": 0.01, "ok": True}]
    assert result["failures"] == 0
    assert result["reason"].startswith("condition 'value is none or value < 0.05' held in 1 of 1 measurement")
    assert "last value 0.01" in result["reason"]
    assert "warnings" not in result


def test_a_bake_queries_every_interval_until_it_is_over_and_never_sleeps_past_it() -> None:
    result, prometheus, clock = run([0.0, 0.01, 0.02], bake=10, interval=3)
    starts = [at - 1_000_000.0 for _url, _p, at in prometheus.calls]
    assert starts == pytest.approx([0, 3.01, 6.02, 9.03, 10.0])
    assert clock.sleeps[-1] == pytest.approx(10 - 9.04)  # the last sleep ends at the bake's end
    assert result["verdict"] == "pass"
    assert [m["value"] for m in result["measurements"]] == [0.0, 0.01, 0.02, 0.02, 0.02]
    assert result["elapsed"] == pytest.approx(10.01)
    assert "held in 5 of 5 measurements" in result["reason"]


def test_a_false_condition_fails_at_once_with_the_evidence() -> None:
    labels = {"proxy": "app", "server": "app02"}
    error, prometheus = failing([0.0, 0.01, vector(0.2, labels=labels)], bake=60, interval=5)
    assert len(prometheus.calls) == 3  # not a query more: the bake is cut short
    details = error.details
    assert details["verdict"] == "fail" and details["changed"] is False
    assert details["query"] == QUERY and details["url"] == URL
    assert details["samples"] == [{"metric": labels, "value": 0.2}]
    assert details["value"] == 0.2
    assert [m["ok"] for m in details["measurements"]] == [True, True, False]
    assert details["failures"] == 1
    assert details["elapsed"] == pytest.approx(10.03)
    assert (
        error.message
        == details["reason"]
        == (
            f"condition 'value is none or value < 0.05' false at measurement 3 (1 false, failure_limit 0) of "
            f"{QUERY!r} on {URL}: value 0.2 (1 sample: {{proxy='app', server='app02'}} 0.2)"
        )
    )


def test_failure_limit_tolerates_that_many_failed_measurements_and_fails_on_one_more() -> None:
    passed, _p, _c = run([0.2, 0.01, 0.3, 0.0], bake=6, interval=2, failure_limit=2)
    assert passed["verdict"] == "pass"
    assert passed["failures"] == 2
    assert "held in 2 of 4 measurements" in passed["reason"] and "failure_limit 2" in passed["reason"]

    error, prometheus = failing([0.2, 0.01, 0.3, 0.4, 0.0], bake=60, interval=2, failure_limit=2)
    assert len(prometheus.calls) == 4
    assert error.details["failures"] == 3
    assert "false at measurement 4 (3 false, failure_limit 2)" in error.message


def test_no_sample_every_time_is_inconclusive_a_warning_by_default() -> None:
    result, prometheus, _clock = run([None, "nan"], bake=4, interval=2)
    assert len(prometheus.calls) == 3
    assert result["verdict"] == "inconclusive"
    assert result.get("failed") is None
    assert result["value"] is None
    assert result["samples"] == [{"metric": {}, "value": None}]  # NaN: a sample without a value
    assert result["reason"] == f"no sample with a value in 3 measurements of {QUERY!r} over 4.0s"
    assert result["warnings"] == [f"prometheus analysis inconclusive: {result['reason']}"]


def test_inconclusive_pass_is_quiet_and_inconclusive_fail_fails() -> None:
    quiet, _p, _c = run([None], inconclusive="pass")
    assert quiet["verdict"] == "inconclusive" and "warnings" not in quiet

    error, _prometheus = failing([None], inconclusive="fail", bake=2, interval=1)
    assert error.details["verdict"] == "inconclusive"
    assert error.message.startswith(
        "no verdict within the bake of 2s: no sample with a value in 3 measurements"
    )


def test_one_measurement_with_a_value_is_enough_for_a_pass() -> None:
    result, _p, _c = run([None, 0.01, None], bake=2, interval=1)
    assert result["verdict"] == "pass"
    assert [m["value"] for m in result["measurements"]] == [None, 0.01, None]


def test_the_condition_sees_every_sample_and_the_first_value() -> None:
    seen: list[tuple[list[dict[str, t.Any]], float | None]] = []

    def condition(result: list[dict[str, t.Any]], value: float | None) -> bool:
        seen.append((result, value))
        return True

    run([vector(0.5, 2.0, labels={"server": "app01"})], judge=condition)
    samples = [{"metric": {"server": "app01"}, "value": 0.5}, {"metric": {"server": "app01"}, "value": 2.0}]
    assert seen == [(samples, 0.5)]


def test_a_scalar_is_one_sample_without_labels() -> None:
    scalar = HttpAnswer(
        200, json.dumps({"status": "success", "data": {"resultType": "scalar", "result": [1, "3"]}})
    )
    result, _p, _c = run([scalar], judge=lambda _r, v: v == 3)
    assert result["samples"] == [{"metric": {}, "value": 3.0}]


# ---- what Prometheus answers ----------------------------------------------------------------------


def test_a_range_vector_is_refused_with_a_hint() -> None:
    matrix = HttpAnswer(
        200, json.dumps({"status": "success", "data": {"resultType": "matrix", "result": []}})
    )
    error, _prometheus = failing([matrix], InvalidInputError)
    assert "gives a matrix (a range vector: take its rate() or another function of it)" in error.message


def test_a_query_prometheus_refuses_fails_naming_the_url_and_prometheus_error() -> None:
    said = 'invalid parameter "query": 1:16: parse error: unclosed left parenthesis'
    refused = HttpAnswer(400, json.dumps({"status": "error", "errorType": "bad_data", "error": said}))
    error, prometheus = failing([refused], InvalidInputError, bake=30)
    assert len(prometheus.calls) == 1
    assert error.message == f"Prometheus at {URL} refused the query {QUERY!r}: bad_data: {said} (HTTP 400)"
    assert error.details["prometheus_error"] == said
    assert error.details["http_status"] == 400


def test_a_prometheus_error_or_something_else_answering_fails_at_once() -> None:
    unavailable = HttpAnswer(
        503, json.dumps({"status": "error", "errorType": "unavailable", "error": "busy"})
    )
    error, _p = failing([0.0, unavailable], ConnectionFailedError, bake=30, interval=1, failure_limit=5)
    assert (
        error.message
        == f"Prometheus at {URL} answered an error to the query {QUERY!r}: unavailable: busy (HTTP 503)"
    )

    page = HttpAnswer(404, "<html>\n<body>404 page not found</body></html>")
    error, _p = failing([page], ConnectionFailedError)
    assert error.message == (
        f"Prometheus at {URL} answered HTTP 404, not with Prometheus's API: "
        "'<html> <body>404 page not found</body></html>'"
    )


def test_no_answer_in_the_middle_of_a_bake_fails_at_once() -> None:
    gone = ConnectionFailedError(f"Prometheus at {URL} did not answer: Connection refused")
    error, prometheus = failing([0.0, gone], ConnectionFailedError, bake=30, interval=1)
    assert len(prometheus.calls) == 2
    assert error is gone


# ---- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"bake": -1.0}, "bake must be a number of seconds (0 or more), got -1.0"),
        ({"bake": float("inf")}, "bake must be a number of seconds (0 or more), got inf"),
        ({"interval": 0.0}, "interval must be a number of seconds (0.1 or more), got 0.0"),
        ({"interval": 0.05}, "interval must be a number of seconds (0.1 or more), got 0.05"),
        ({"timeout": 0.0}, "timeout must be a number of seconds (more than 0), got 0.0"),
        ({"failure_limit": -1}, "failure_limit must be a count of failed measurements (0 or more), got -1"),
        (
            {"url": "ftp://127.0.0.1:9090"},
            "url must be the http:// or https:// base URL of a Prometheus server, got 'ftp://127.0.0.1:9090'",
        ),
        ({"url": "127.0.0.1:9090"}, "got '127.0.0.1:9090'"),
        ({"url": ""}, "got ''"),
        ({"url": "http://127.0.0.1:9090/api/v1/query?query=up"}, "without a query or a fragment"),
        ({"query": ""}, "query must not be empty, got ''"),
        ({"query": "  "}, "query must not be empty, got '  '"),
        ({"condition": ""}, "condition must not be empty, got ''"),
        ({"inconclusive": "maybe"}, "inconclusive must be pass, warn or fail, got 'maybe'"),
    ],
)
def test_bad_input_fails_naming_the_value_before_any_query(overrides: dict[str, t.Any], message: str) -> None:
    error, prometheus = failing([0.0], InvalidInputError, **overrides)
    assert message in error.message
    assert prometheus.calls == []


def test_a_header_value_is_never_in_a_message_and_a_password_in_the_url_is_masked() -> None:
    error, _p = failing([0.0], InvalidInputError, headers={"Authorization": 12345678})
    assert "'Authorization'" in error.message and "12345678" not in error.message

    gone = ConnectionFailedError("no")  # not reached: the URL is refused first
    secret = "http://admin:s3cret@127.0.0.1:9090"
    error, _p = failing([vector(0.5)], url=secret)
    assert "s3cret" not in error.message and "http://admin:***@127.0.0.1:9090" in error.message
    assert error.details["url"] == "http://admin:***@127.0.0.1:9090"
    error, _p = failing([gone], InvalidInputError, url="ftp://admin:s3cret@x")
    assert "s3cret" not in error.message


# ---- HTTP over requests ---------------------------------------------------------------------------


class PrometheusStub(QuietHandler):
    """Answers like Prometheus; says which Authorization header it got; /slow takes a second."""

    def do_GET(self) -> None:
        if self.path.startswith("/slow"):
            time.sleep(1)
        auth = self.headers.get("Authorization", "")
        body = {
            "status": "success",
            "data": {
                "resultType": "vector",
                "result": [{"metric": {"auth": auth, "path": self.path}, "value": [1, "1"]}],
            },
        }
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # /slow: the client gave up
            self.answer(200, json.dumps(body))


def test_requests_get_sends_the_headers_and_the_query() -> None:
    with serve_http(PrometheusStub) as url:
        get = requests_get({"Authorization": "Bearer t0ken"}, timeout=5, validate_certs=True)
        result = analyse(params(url=url + "/prefix/", condition="x"), lambda _r, _v: True, get)
    (sample,) = result["samples"]
    assert sample["metric"]["auth"] == "Bearer t0ken"
    path, _, query = sample["metric"]["path"].partition("?")
    assert path == "/prefix/api/v1/query"
    assert urllib.parse.parse_qs(query) == {"query": [QUERY]}
    assert result["url"] == url + "/prefix"


def test_requests_get_names_the_url_that_does_not_answer() -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    with pytest.raises(ConnectionFailedError) as raised:
        analyse(params(url=url), below(0.05), requests_get({}, timeout=5, validate_certs=True))
    assert raised.value.message == f"Prometheus at {url} did not answer: Connection refused"
    assert raised.value.details == {"url": url, "timed_out": False}


def test_requests_get_gives_up_after_the_timeout() -> None:
    with serve_http(PrometheusStub) as url:
        get = requests_get({}, timeout=0.2, validate_certs=True)
        with pytest.raises(ConnectionFailedError) as raised:
            get(url + "/slow/api/v1/query", {"query": "up"})
    assert raised.value.message == f"Prometheus at {url}/slow did not answer within 0.2s"
    assert raised.value.details["timed_out"] is True


def test_without_requests_the_task_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "requests", None)  # import requests now raises ImportError
    with pytest.raises(MissingRequirementError, match="needs the Python library requests on the controller"):
        analyse(params(), below(0.05))


# ---- the condition, with Ansible's templar --------------------------------------------------------


def trusted(expression: str) -> str:
    """What a playbook's string is to ansible-core 2.19 and later: trusted as a template."""
    try:
        from ansible.template import trust_as_template  # noqa: PLC0415 - 2.19 and later
    except ImportError:
        return expression
    return t.cast(str, trust_as_template(expression))


def evaluate(condition: str, value: float | None, task_vars: dict[str, t.Any] | None = None) -> bool:
    loader = DataLoader()
    result = [] if value is None else [{"metric": {"server": "app02"}, "value": value}]
    variables = task_vars or {}
    templar = Templar(loader=loader, variables=variables)
    return evaluate_condition(
        templar, loader, trusted(condition), {"result": result, "value": value}, variables
    )


@pytest.mark.parametrize(
    ("condition", "value", "expected"),
    [
        ("value is none or value < 0.05", 0.01, True),
        ("value is none or value < 0.05", 0.2, False),
        ("value is none or value < 0.05", None, True),
        ("result | length == 0", None, True),
        ("result | map(attribute='value') | max < 0.5", 0.2, True),
        ("result[0].metric.server == 'app02'", 0.2, True),
        ("value < limit", 0.2, False),  # the task's variables too
    ],
)
def test_the_condition_is_a_jinja2_expression_on_result_and_value(
    condition: str, value: float | None, expected: bool
) -> None:
    assert evaluate(condition, value, {"limit": 0.1}) is expected


@pytest.mark.parametrize(
    ("condition", "value", "said"),
    [
        ("value < 0.05", None, "'<' not supported between instances of 'NoneType' and 'float'"),
        ("value <", 0.2, ""),
        ("nowhere > 1", 0.2, "'nowhere' is undefined"),
        ("__import__('os').system('true')", 0.2, ""),
    ],
)
def test_a_condition_that_cannot_be_evaluated_fails_naming_it_and_the_values(
    condition: str, value: float | None, said: str
) -> None:
    with pytest.raises(InvalidInputError) as raised:
        evaluate(condition, value)
    assert raised.value.message.startswith(f"condition {condition!r} could not be evaluated with result=")
    assert f"value={value!r}" in raised.value.message
    assert said in raised.value.message


def test_an_untrusted_condition_is_not_evaluated() -> None:
    if not hasattr(Templar, "evaluate_conditional"):
        pytest.skip("ansible-core before 2.19 trusts every string")
    loader = DataLoader()
    templar = Templar(loader=loader, variables={})
    with pytest.raises(InvalidInputError, match="could not be evaluated"):
        evaluate_condition(templar, loader, "value > 0", {"result": [], "value": 1.0}, {})
