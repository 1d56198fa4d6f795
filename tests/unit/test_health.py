"""HealthProbe with a scripted fetch and a fake clock: the polling rules, the checks, the evidence."""

from __future__ import annotations

import dataclasses
import typing as t

import pytest
from ansible_collections.fleet.rollout.plugins.module_utils import _health
from ansible_collections.fleet.rollout.plugins.module_utils._errors import (
    ConnectionFailedError,
    HealthCheckFailedError,
    InvalidInputError,
)
from ansible_collections.fleet.rollout.plugins.module_utils._health import (
    HealthCheckSpec,
    HealthProbe,
    parse_tcp_target,
)
from ansible_collections.fleet.rollout.plugins.module_utils._health_response import EXCERPT_CHARS, excerpt_of
from ansible_collections.fleet.rollout.plugins.module_utils._http import HttpRequest, HttpResponse

from tests.fakes.clock import FakeClock

URL = "http://app.test/health"


class ScriptedFetch:
    """Answers from a script; the last entry repeats. An exception in the script is raised."""

    def __init__(self, clock: FakeClock, script: list[t.Any], latency: float = 0.0) -> None:
        self.clock = clock
        self.script = script
        self.latency = latency
        self.requests: list[HttpRequest] = []

    def __call__(self, request: HttpRequest) -> HttpResponse:
        self.requests.append(request)
        self.clock.now += self.latency
        step = self.script[min(len(self.requests), len(self.script)) - 1]
        if isinstance(step, Exception):
            raise step
        if isinstance(step, int):
            return HttpResponse(step, b"ok" if step == 200 else b"down for maintenance")
        return t.cast(HttpResponse, step)


def probe(
    script: list[t.Any], latency: float = 0.0, **spec: t.Any
) -> tuple[HealthProbe, FakeClock, ScriptedFetch]:
    clock = FakeClock()
    fetch = ScriptedFetch(clock, script, latency)
    spec.setdefault("url", URL)
    return HealthProbe(HealthCheckSpec(**spec), fetch=fetch, clock=clock, sleep=clock.sleep), clock, fetch


def json_response(body: str) -> HttpResponse:
    return HttpResponse(200, body.encode())


def test_healthy_at_once_reports_one_attempt_and_the_body() -> None:
    health, clock, _ = probe([200])
    result = health.run()
    assert result["attempts"] == 1
    assert result["seconds_to_healthy"] == 0
    assert result["status"] == 200
    assert result["excerpt"] == "ok"
    assert clock.sleeps == []


def test_polls_at_the_interval_until_healthy() -> None:
    health, clock, _ = probe([503, 503, 200], interval=0.5)
    result = health.run()
    assert result["attempts"] == 3
    assert result["seconds_to_healthy"] == 1.0
    assert clock.sleeps == [0.5, 0.5]
    assert [o["healthy"] for o in result["observations"]] == [False, False, True]


def test_successes_must_come_in_a_row() -> None:
    health, _, _ = probe([200, 503, 200, 200, 200], successes=3, interval=0.1)
    assert health.run()["attempts"] == 5


def test_stable_for_keeps_probing_until_the_window_has_passed() -> None:
    health, _, _ = probe([200], stable_for=1.0, interval=0.5)
    result = health.run()
    assert result["attempts"] == 3  # healthy at 0, 0.5 and 1.0 s
    assert result["seconds_to_healthy"] == 1.0


def test_a_failure_inside_the_stable_window_starts_it_again() -> None:
    health, _, _ = probe([200, 200, 503, 200, 200, 200], stable_for=1.0, interval=0.5)
    result = health.run()
    assert result["attempts"] == 6
    assert result["seconds_to_healthy"] == 2.5


def test_deadline_fails_with_the_last_observation() -> None:
    health, clock, _ = probe([503], interval=0.5, deadline=2)
    with pytest.raises(HealthCheckFailedError) as caught:
        health.run()
    error = caught.value
    # Attempts start at 0, 0.5, 1.0 and 1.5 s; one at 2.0 would not be before the deadline.
    assert error.details["attempts"] == 4
    assert error.details["status"] == 503
    assert error.details["excerpt"] == "down for maintenance"
    assert error.details["error"] == "status 503 is not one of [200]"
    assert "status 503" in error.message
    assert "down for maintenance" in error.message
    assert "within 2s (4 attempts)" in error.message
    assert clock.now - 100.0 < 2.0
    assert len(error.details["observations"]) == 4


def test_a_connection_error_is_an_observation_not_a_crash() -> None:
    refused = ConnectionFailedError(f"{URL}: [Errno 111] Connection refused", url=URL)
    health, _, _ = probe([refused, refused, 200], interval=0.1)
    result = health.run()
    assert result["attempts"] == 3
    assert result["observations"][0]["error"].endswith("Connection refused")
    assert result["observations"][0]["status"] is None


def test_connection_error_until_deadline_is_in_the_message() -> None:
    refused = ConnectionFailedError(f"{URL}: [Errno 111] Connection refused", url=URL)
    health, _, _ = probe([refused], interval=0.2, deadline=1)
    with pytest.raises(HealthCheckFailedError) as caught:
        health.run()
    assert "no answer" in caught.value.message
    assert "Connection refused" in caught.value.message
    assert caught.value.details["status"] is None


def test_healthy_but_not_stable_enough_says_how_far_it_got() -> None:
    health, _, _ = probe([503, 503, 503, 200], successes=5, interval=0.5, deadline=2.2)
    with pytest.raises(HealthCheckFailedError) as caught:
        health.run()
    assert "healthy 2 time(s) in a row, needed 5" in caught.value.message


def test_each_attempt_timeout_never_reaches_past_the_deadline() -> None:
    health, _, fetch = probe([503], latency=0.4, interval=0.1, timeout=5, deadline=1)
    with pytest.raises(HealthCheckFailedError):
        health.run()
    timeouts = [request.timeout for request in fetch.requests]
    assert timeouts[0] == 1
    assert all(0 < left <= 1 for left in timeouts)
    assert timeouts == sorted(timeouts, reverse=True)


def test_request_carries_method_headers_and_tls_options() -> None:
    health, _, fetch = probe(
        [200], method="head", headers={"Host": "app"}, validate_certs=False, ca_path="/ca.pem"
    )
    health.run()
    request = fetch.requests[0]
    assert (request.method, request.headers, request.validate_certs, request.ca_path) == (
        "HEAD",
        {"Host": "app"},
        False,
        "/ca.pem",
    )


def test_other_expected_status_codes() -> None:
    health, _, _ = probe([HttpResponse(204, b"")], status=(200, 204))
    assert health.run()["status"] == 204


def test_body_regex_must_match() -> None:
    health, _, _ = probe([json_response("starting"), json_response("ready: yes")], body_regex=r"ready: \w+")
    result = health.run()
    assert result["attempts"] == 2
    assert result["observations"][0]["error"] == "body does not match 'ready: \\\\w+'"


def test_json_query_must_give_the_expected_value() -> None:
    health, _, _ = probe(
        [json_response('{"checks": {"db": "down"}}'), json_response('{"checks": {"db": "up"}}')],
        json_query="checks.db",
        json_expect="up",
    )
    result = health.run()
    assert result["attempts"] == 2
    assert result["observations"][0]["error"] == "json_query 'checks.db' gave 'down', expected 'up'"


@pytest.mark.parametrize(
    ("body", "query", "expect", "healthy"),
    [
        ('{"ok": true}', "ok", True, True),
        ('{"ok": 1}', "ok", True, False),  # Python's True == 1 must not make this pass
        ('{"n": 3}', "n", 3, True),
        ('{"n": 3}', "n", "3", False),
        ('{"items": [1, 2]}', "items", [1, 2], True),
        ('{"items": [1, 2]}', "length(items)", 2, True),
    ],
)
def test_json_values_compare_with_their_types(body: str, query: str, expect: t.Any, healthy: bool) -> None:
    health, _, _ = probe([json_response(body)], json_query=query, json_expect=expect, deadline=0.1)
    if healthy:
        health.run()
    else:
        with pytest.raises(HealthCheckFailedError, match="json_query"):
            health.run()


def test_a_body_that_is_not_json_fails_the_json_query() -> None:
    health, _, _ = probe([json_response("<html>")], json_query="a", json_expect=1, deadline=0.1)
    with pytest.raises(HealthCheckFailedError, match="body is not JSON"):
        health.run()


def test_json_query_without_jmespath_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_health, "HAS_JMESPATH", False)
    health, _, fetch = probe([200], json_query="a", json_expect=1)
    with pytest.raises(InvalidInputError, match="jmespath"):
        health.run()
    assert fetch.requests == []


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"url": None}, "exactly one of url and tcp"),
        ({"tcp": "127.0.0.1:80"}, "exactly one of url and tcp"),
        ({"url": "ftp://x/"}, "must start with http"),
        ({"status": (200, 700)}, "status must list HTTP codes"),
        ({"successes": 0}, "successes must be at least 1"),
        ({"interval": -1}, "interval must not be negative"),
        ({"timeout": 0}, "must be positive"),
        ({"stable_for": 60, "deadline": 60}, "stable_for must be at least 0 and below deadline"),
        ({"body_regex": "("}, "is not a regular expression"),
        ({"json_query": "a[", "json_expect": 1}, "is not a JMESPath expression"),
        ({"failure_threshold": -1}, r"failure_threshold must be 0 \(never fail early\) or more, got -1"),
        ({"startup_grace": -0.5}, "startup_grace must not be negative, got -0.5"),
        (
            {"warming_status": (503, 1000)},
            r"warming_status must list HTTP codes from 100 to 599, got \[503, 1000\]",
        ),
    ],
)
def test_invalid_specs_fail_before_any_request(spec: dict[str, t.Any], message: str) -> None:
    health, _, fetch = probe([200], **spec)
    with pytest.raises(InvalidInputError, match=message):
        health.run()
    assert fetch.requests == []


def test_tcp_check_connects_with_the_remaining_time() -> None:
    clock = FakeClock()
    calls: list[tuple[str, int, float]] = []

    def connect(host: str, port: int, timeout: float) -> None:
        calls.append((host, port, timeout))
        if len(calls) < 3:
            raise ConnectionFailedError(f"TCP connect to {host}:{port} failed: refused")

    spec = HealthCheckSpec(tcp="[::1]:8080", interval=0.25, timeout=2, deadline=10)
    result = HealthProbe(spec, connect=connect, clock=clock, sleep=clock.sleep).run()
    assert result["attempts"] == 3
    assert result["status"] is None
    assert calls[0] == ("::1", 8080, 2)


def test_tcp_refuses_http_only_options() -> None:
    spec = HealthCheckSpec(tcp="127.0.0.1:80", body_regex="x", headers={"a": "b"})
    with pytest.raises(InvalidInputError, match="headers, body_regex only apply to url checks"):
        HealthProbe(spec).run()


@pytest.mark.parametrize("value", ["localhost", "host:", ":80", "host:0", "host:65536", "host:http"])
def test_bad_tcp_targets(value: str) -> None:
    with pytest.raises(InvalidInputError, match="tcp must be host:port"):
        parse_tcp_target(value)


def test_excerpt_is_one_short_line() -> None:
    assert excerpt_of(b"  a\n\n b\tc  ") == "a b c"
    long = excerpt_of(b"x" * 1000)
    assert len(long) == EXCERPT_CHARS
    assert long.endswith("...")
    assert excerpt_of(b"\xff ok") == "\ufffd ok"


def test_observations_keep_only_the_last_few() -> None:
    health, _, _ = probe([503] * 30 + [200], interval=0.01)
    result = health.run()
    assert result["attempts"] == 31
    assert [o["attempt"] for o in result["observations"]] == list(range(22, 32))


def test_spec_is_immutable_input() -> None:
    spec = HealthCheckSpec(url=URL)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.url = "http://other/"  # type: ignore[misc]


def test_a_sleep_that_overshoots_the_deadline_ends_the_check_without_a_timeout_below_zero() -> None:
    """On a loaded machine a sleep can wake after the deadline; the next attempt would get a negative
    timeout (socket: "Timeout value out of range"). The check fails at the deadline instead."""
    health, clock, fetch = probe([503], deadline=1.0, interval=0.5)

    def oversleep(seconds: float) -> None:
        clock.now += seconds + 1.0

    health.sleep = oversleep
    with pytest.raises(HealthCheckFailedError, match=r"not healthy within 1s \(1 attempts\)"):
        health.run()
    assert [request.timeout > 0 for request in fetch.requests] == [True]


# Fail fast: failure_threshold definitive failures in a row end the check before its deadline.

REFUSED = ConnectionFailedError(f"{URL}: [Errno 111] Connection refused", url=URL)
TIMED_OUT = ConnectionFailedError(f"{URL}: timed out", url=URL, timed_out=True)


def test_a_health_page_that_answers_500_fails_fast_with_the_evidence() -> None:
    health, clock, fetch = probe([500], interval=0.1)  # the deploy role's interval; deadline 60
    with pytest.raises(HealthCheckFailedError) as caught:
        health.run()
    error = caught.value
    assert len(fetch.requests) == 3
    assert clock.now - 100.0 == pytest.approx(0.2)
    assert error.details["failed_fast"] is True
    assert (error.details["attempts"], error.details["status"]) == (3, 500)
    assert error.details["elapsed"] == pytest.approx(0.2)
    assert [(o["status"], o["definitive"]) for o in error.details["observations"]] == [(500, True)] * 3
    assert error.message.startswith(
        f"health check of {URL} failed 3 checks in a row (status 500, expected 200) after it had answered; "
        "failing fast instead of waiting for the 60s deadline (3 attempts in 0.2s); last attempt: status 500"
    )
    assert "down for maintenance" in error.message


def test_a_deadline_failure_says_it_did_not_fail_fast() -> None:
    health, _, _ = probe([503], interval=0.5, deadline=2)
    with pytest.raises(HealthCheckFailedError) as caught:
        health.run()
    assert caught.value.details["failed_fast"] is False
    assert not any(o["definitive"] for o in caught.value.details["observations"])


def test_failure_threshold_0_waits_for_the_deadline() -> None:
    health, clock, fetch = probe([500], interval=0.25, deadline=2, failure_threshold=0)
    with pytest.raises(HealthCheckFailedError, match=r"not healthy within 2s \(8 attempts\)") as caught:
        health.run()
    assert caught.value.details["failed_fast"] is False
    assert len(fetch.requests) == 8  # at 0, 0.25, ... 1.75 s: every one a 500
    assert clock.now - 100.0 == 1.75


def test_any_other_unexpected_status_counts_too() -> None:
    health, _, fetch = probe([HttpResponse(404, b"not found")], interval=0.1, failure_threshold=2)
    with pytest.raises(
        HealthCheckFailedError, match=r"failed 2 checks in a row \(status 404, expected 200\)"
    ):
        health.run()
    assert len(fetch.requests) == 2


def test_a_warm_up_of_503s_never_counts() -> None:
    # 20 s of 503 at the deploy role's interval, then healthy: 200 warming answers, none of them counted.
    health, _, _ = probe([503] * 200 + [200], interval=0.1)
    result = health.run()
    assert result["attempts"] == 201
    assert result["seconds_to_healthy"] == pytest.approx(20.0)
    assert not any(o["definitive"] for o in result["observations"])


def test_warming_status_is_the_list_given() -> None:
    health, _, fetch = probe([503], interval=0.1, warming_status=())
    with pytest.raises(
        HealthCheckFailedError, match=r"failed 3 checks in a row \(status 503, expected 200\)"
    ):
        health.run()
    assert len(fetch.requests) == 3
    health, _, _ = probe([429] * 10 + [200], interval=0.1, warming_status=(429, 503))
    assert health.run()["attempts"] == 11


def test_a_status_that_is_expected_and_warming_is_healthy() -> None:
    health, _, _ = probe([503], status=(200, 503))
    assert health.run()["status"] == 503


def test_a_wrong_body_on_an_expected_status_counts() -> None:
    health, _, fetch = probe([json_response("starting")], interval=0.1, body_regex="ready")
    with pytest.raises(HealthCheckFailedError) as caught:
        health.run()
    assert len(fetch.requests) == 3
    assert "failed 3 checks in a row (status 200, but body does not match 'ready') after it had answered" in (
        caught.value.message
    )


def test_refused_before_the_first_answer_within_the_grace_does_not_count() -> None:
    # A restarted service that takes 5 s to listen, then warms up for 2 s.
    health, _, _ = probe([REFUSED] * 50 + [503] * 20 + [200], interval=0.1, startup_grace=10)
    result = health.run()
    assert result["attempts"] == 71


def test_refused_after_the_grace_counts() -> None:
    health, clock, fetch = probe([REFUSED], interval=0.5, startup_grace=2)
    with pytest.raises(HealthCheckFailedError) as caught:
        health.run()
    # Attempts at 0 ... 1.5 s are within the grace; those at 2.0, 2.5 and 3.0 s count.
    assert len(fetch.requests) == 7
    assert clock.now - 100.0 == 3.0
    assert [o["definitive"] for o in caught.value.details["observations"]] == [False] * 4 + [True] * 3
    assert (
        "failed 3 checks in a row (no answer) after the 2s startup grace; failing fast"
        in caught.value.message
    )
    assert "Connection refused" in caught.value.message


def test_answered_then_refused_counts_within_the_grace() -> None:
    # It answered (503, warming up), then died: refused connections count from then on.
    health, clock, _ = probe([503, 503, REFUSED], interval=0.1, startup_grace=10)
    with pytest.raises(HealthCheckFailedError) as caught:
        health.run()
    assert caught.value.details["attempts"] == 5
    assert clock.now - 100.0 == pytest.approx(0.4)
    assert "failed 3 checks in a row (no answer) after it had answered" in caught.value.message


def test_healthy_then_refused_counts_while_it_is_not_stable_yet() -> None:
    health, _, _ = probe([200, 200, REFUSED], interval=0.1, successes=5)
    with pytest.raises(HealthCheckFailedError, match="after it had answered; failing fast") as caught:
        health.run()
    assert caught.value.details["attempts"] == 5


def test_a_timeout_counts_only_after_the_grace_even_once_answered() -> None:
    health, _, _ = probe([503] + [TIMED_OUT] * 30 + [200], interval=0.1, startup_grace=10)
    assert health.run()["attempts"] == 32  # 3 s of timeouts after a first answer: a slow start
    health, clock, _ = probe([TIMED_OUT], interval=0.25, startup_grace=1)
    with pytest.raises(HealthCheckFailedError, match="after the 1s startup grace"):
        health.run()
    assert clock.now - 100.0 == 1.5  # attempts at 1.0, 1.25 and 1.5 s count


def test_a_success_ends_the_run_of_failures() -> None:
    health, _, _ = probe([500, 500, 200, 500, 500, 200, 200], interval=0.1, successes=2)
    result = health.run()
    assert result["attempts"] == 7
    assert [o["definitive"] for o in result["observations"]] == [True, True, False] * 2 + [False]


def test_a_warming_answer_ends_the_run_of_failures() -> None:
    health, _, _ = probe([500, 500, 503, 500, 500, 200], interval=0.1)
    assert health.run()["attempts"] == 6


def test_stable_for_still_starts_again_after_a_definitive_failure() -> None:
    health, _, _ = probe([200, 200, 500, 200, 200, 200], stable_for=1.0, interval=0.5)
    result = health.run()
    assert (result["attempts"], result["seconds_to_healthy"]) == (6, 2.5)


def test_tcp_refused_after_it_connected_counts() -> None:
    clock = FakeClock()
    calls: list[float] = []

    def connect(host: str, port: int, timeout: float) -> None:
        calls.append(clock.now)
        if len(calls) > 1:
            raise ConnectionFailedError(f"TCP connect to {host}:{port} failed: refused")

    spec = HealthCheckSpec(tcp="127.0.0.1:8080", successes=3, interval=0.1)
    with pytest.raises(HealthCheckFailedError) as caught:
        HealthProbe(spec, connect=connect, clock=clock, sleep=clock.sleep).run()
    assert len(calls) == 4
    assert caught.value.details["failed_fast"] is True
    assert "tcp://127.0.0.1:8080 failed 3 checks in a row (no answer) after it had answered" in (
        caught.value.message
    )
