"""A health check's deadline holds whatever the server does (issue 14, item 4): the body read stops when
the attempt's time is up, and the probe says the deadline passed while the answer was still arriving.
Fakes for the clock, the response and the fetch; no socket."""

from __future__ import annotations

import pytest
from ansible_collections.fleet.rollout.plugins.module_utils._errors import (
    ConnectionFailedError,
    HealthCheckFailedError,
)
from ansible_collections.fleet.rollout.plugins.module_utils._health import HealthCheckSpec, HealthProbe
from ansible_collections.fleet.rollout.plugins.module_utils._http import (
    BODY_CHUNK_BYTES,
    MAX_BODY_BYTES,
    AnswerStillArriving,
    Arrival,
    HttpRequest,
    HttpResponse,
    read_body,
    too_late,
)

from tests.fakes.clock import FakeClock

URL = "http://app.test/health"


class TricklingResponse:
    """A response whose every read gives ``per_read`` bytes after ``every`` seconds, ``total`` in all."""

    def __init__(self, clock: FakeClock, every: float, total: int, per_read: int = 1) -> None:
        self.clock = clock
        self.every = every
        self.left = total
        self.per_read = per_read
        self.reads: list[int] = []

    def read1(self, size: int) -> bytes:
        self.reads.append(size)
        self.clock.now += self.every
        chunk = min(self.per_read, size, self.left)
        self.left -= chunk
        return b"o" * chunk


def test_a_trickling_body_is_cut_off_when_the_time_is_up() -> None:
    clock = FakeClock()
    response = TricklingResponse(clock, every=0.5, total=100_000)
    body = bytearray()
    with pytest.raises(AnswerStillArriving, match="6 bytes of the body so far"):
        read_body(response, clock.now + 3.0, body, clock)
    assert len(body) == 6  # one byte every 0.5 s for 3 s, and not one read after
    assert clock.now == 103.0


def test_a_whole_body_is_read_a_socket_read_at_a_time() -> None:
    clock = FakeClock()
    response = TricklingResponse(clock, every=0.01, total=10, per_read=4)
    body = bytearray()
    read_body(response, clock.now + 3.0, body, clock)
    assert bytes(body) == b"o" * 10
    assert len(response.reads) == 4  # 4 + 4 + 2, then the end of the body


def test_a_body_stops_at_the_limit_without_waiting_for_more() -> None:
    clock = FakeClock()
    response = TricklingResponse(clock, every=0.0, total=MAX_BODY_BYTES * 2, per_read=MAX_BODY_BYTES)
    body = bytearray()
    read_body(response, clock.now + 3.0, body, clock)
    assert len(body) == MAX_BODY_BYTES
    assert response.reads == [BODY_CHUNK_BYTES] * (MAX_BODY_BYTES // BODY_CHUNK_BYTES)  # none past the limit


def test_time_up_says_whether_any_answer_had_come() -> None:
    request = HttpRequest(URL, timeout=2.5)
    silent = too_late(request, Arrival())
    assert silent.message == f"{URL}: timed out (no answer within 2.5s)"
    assert silent.details["timed_out"] is True
    assert "still_arriving" not in silent.details
    arriving = too_late(request, Arrival(status=200, body=bytearray(b"ok")))
    assert arriving.message == (
        f"{URL}: the answer was still arriving after 2.5s (status 200, 2 bytes of the body so far)"
    )
    assert arriving.details == {
        "url": URL,
        "timed_out": True,
        "still_arriving": True,
        "status": 200,
        "received": 2,
    }


class TricklingFetch:
    """A fetch whose answer never completes: it takes all the time it is given, then says so."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.requests: list[HttpRequest] = []

    def __call__(self, request: HttpRequest) -> HttpResponse:
        self.requests.append(request)
        self.clock.now += request.timeout
        raise too_late(request, Arrival(status=200, body=bytearray(b"o" * int(request.timeout * 2))))


def test_the_probe_fails_at_its_deadline_saying_the_answer_was_still_arriving() -> None:
    clock = FakeClock()
    fetch = TricklingFetch(clock)
    spec = HealthCheckSpec(url=URL, deadline=3.0, interval=0.1)  # timeout 5: the deadline comes first
    probe = HealthProbe(spec, fetch=fetch, clock=clock, sleep=clock.sleep)
    with pytest.raises(HealthCheckFailedError) as caught:
        probe.run()
    assert [request.timeout for request in fetch.requests] == [3.0]
    assert caught.value.details["elapsed"] == 3.0
    assert caught.value.message == (
        f"health check of {URL} failed: not healthy within 3s (1 attempts); last attempt: no answer; "
        f"{URL}: the 3s deadline passed while the answer was still arriving "
        "(status 200, 6 bytes of the body so far)"
    )


def test_an_attempt_cut_off_by_its_own_timeout_says_so_and_the_next_one_runs() -> None:
    clock = FakeClock()
    fetch = TricklingFetch(clock)
    spec = HealthCheckSpec(url=URL, timeout=1.0, deadline=3.5, interval=0.1, failure_threshold=0)
    with pytest.raises(HealthCheckFailedError) as caught:
        HealthProbe(spec, fetch=fetch, clock=clock, sleep=clock.sleep).run()
    timeouts = [round(request.timeout, 3) for request in fetch.requests]
    assert timeouts == [1.0, 1.0, 1.0, 0.2]  # the last gets what is left of the deadline
    assert caught.value.details["elapsed"] == 3.5
    first = caught.value.details["observations"][0]["error"]
    assert first == f"{URL}: the answer was still arriving after 1s (status 200, 2 bytes of the body so far)"
    assert "3.5s deadline passed while the answer was still arriving" in caught.value.message


def test_a_refused_connection_is_not_said_to_be_still_arriving() -> None:
    clock = FakeClock()
    refused = ConnectionFailedError(f"{URL}: [Errno 111] Connection refused", url=URL)

    def fetch(request: HttpRequest) -> HttpResponse:
        raise refused

    spec = HealthCheckSpec(url=URL, deadline=1.0, interval=0.5, startup_grace=0)
    with pytest.raises(HealthCheckFailedError) as caught:
        HealthProbe(spec, fetch=fetch, clock=clock, sleep=clock.sleep).run()
    assert "still arriving" not in caught.value.message
    assert "Connection refused" in caught.value.message
