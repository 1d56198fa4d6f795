# Private to this collection: not a public API, may change without notice.
"""HTTP from a managed host on ansible.module_utils.urls.open_url (stdlib only, proxies and CA handling
as Ansible does them): a health check's request and a release download share how a failure to get an
answer becomes this collection's ConnectionFailedError."""

from __future__ import annotations

import contextlib
import dataclasses
import http.client
import shutil
import socket
import threading
import time
import typing as t
import urllib.error

from ansible.module_utils.urls import ConnectionError as UrlConnectionError
from ansible.module_utils.urls import open_url
from ansible_collections.fleet.rollout.plugins.module_utils._errors import ConnectionFailedError

# socket.timeout is not TimeoutError before Python 3.10; module code also runs on 3.7 targets.
TIMEOUT_ERRORS = (socket.timeout, TimeoutError)
MAX_BODY_BYTES = 1024 * 1024  # what body_regex and json_query see; a health page is small
BODY_CHUNK_BYTES = 64 * 1024
# An answer that arrives this much past an attempt's time still counts: the checking host's own work (a
# busy controller takes a tenth of a second to make a request) must not turn a last answer into a timeout.
LATE_GRACE = 0.5
NO_ANSWER = (OSError, http.client.HTTPException, UrlConnectionError)


@dataclasses.dataclass(frozen=True)
class HttpRequest:
    url: str
    method: str = "GET"
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    timeout: float = 30
    validate_certs: bool = True
    ca_path: t.Optional[str] = None


@dataclasses.dataclass(frozen=True)
class HttpResponse:
    """Any answer with a status code, 5xx included; only a failure to get an answer raises."""

    status: int
    body: bytes


@contextlib.contextmanager
def answer_to(request: HttpRequest, failure: str, agent: t.Optional[str] = None) -> t.Iterator[t.Any]:
    """The response to ``request``, an HTTP error status included (urllib's HTTPError is a response too);
    no answer, or one broken off while it is read, raises ConnectionFailedError "<failure>: <reason>"."""
    try:
        try:
            response = open_url(
                request.url,
                method=request.method,
                headers=request.headers,
                timeout=request.timeout,
                validate_certs=request.validate_certs,
                ca_path=request.ca_path,
                http_agent=agent,
            )
        except urllib.error.HTTPError as exc:
            response = exc
        try:
            yield response
        finally:
            response.close()
    except urllib.error.URLError as exc:
        timed_out = isinstance(exc.reason, TIMEOUT_ERRORS)
        raise ConnectionFailedError(f"{failure}: {exc.reason}", url=request.url, timed_out=timed_out) from exc
    except NO_ANSWER as exc:
        timed_out = isinstance(exc, TIMEOUT_ERRORS)
        raise ConnectionFailedError(f"{failure}: {exc}", url=request.url, timed_out=timed_out) from exc


class AnswerStillArriving(Exception):
    """The time for an answer ran out while its body was still being read (a body that trickles in)."""


@dataclasses.dataclass
class Arrival:
    """What one request has received so far; the thread that reads it fills it in as the answer comes."""

    status: t.Optional[int] = None
    body: bytearray = dataclasses.field(default_factory=bytearray)
    failure: t.Optional[Exception] = None  # ConnectionFailedError (no answer) or ValueError (a bad URL)
    cut_off: bool = False  # the body was still arriving when the time ran out
    whole: bool = False  # the whole answer (or the first MAX_BODY_BYTES of it) has arrived


def read_body(
    response: t.Any, ends: float, into: bytearray, clock: t.Callable[[], float] = time.monotonic
) -> None:
    """Read the body into ``into``, up to MAX_BODY_BYTES, until it ends; AnswerStillArriving once the
    clock reaches ``ends`` first. One socket read at a time (read1): read(n) would wait for all n bytes,
    each socket read getting the whole timeout again, so a body that trickles in would never time out."""
    read_some = getattr(response, "read1", None) or response.read
    while len(into) < MAX_BODY_BYTES:
        if clock() >= ends:
            raise AnswerStillArriving(f"{len(into)} bytes of the body so far")
        chunk = read_some(min(BODY_CHUNK_BYTES, MAX_BODY_BYTES - len(into)))
        if not chunk:
            return
        into += chunk


@dataclasses.dataclass
class OpenUrlFetch:
    """A health check's request: its status and the start of its body, whatever the status.

    The whole attempt (connect, status, headers and body) takes at most ``request.timeout`` seconds, and
    LATE_GRACE: socket timeouts only bound each read, so the request runs in a thread of its own that the
    caller stops waiting for when the time is up.
    """

    clock: t.Callable[[], float] = time.monotonic

    def __call__(self, request: HttpRequest) -> HttpResponse:
        arrival = Arrival()
        ends = self.clock() + request.timeout + LATE_GRACE
        worker = threading.Thread(
            target=self.receive, args=(request, ends, arrival), name="health-check-fetch", daemon=True
        )
        worker.start()
        worker.join(request.timeout + LATE_GRACE)
        if arrival.cut_off or worker.is_alive():
            raise too_late(request, arrival)
        if arrival.failure is not None:
            raise arrival.failure
        # Neither an answer nor a failure: receive() met an error it does not expect (Python printed it).
        if arrival.status is None or not arrival.whole:
            raise ConnectionFailedError(
                f"{request.url}: the request failed without a whole answer", url=request.url
            )
        return HttpResponse(status=arrival.status, body=bytes(arrival.body))

    def receive(self, request: HttpRequest, ends: float, arrival: Arrival) -> None:
        """Fill ``arrival`` in (in the worker thread): the answer, or the failure to get one."""
        try:
            with answer_to(request, request.url, "fleet.rollout-health_check") as response:
                arrival.status = int(getattr(response, "status", None) or response.code)
                try:
                    read_body(response, ends, arrival.body, self.clock)
                except NO_ANSWER:
                    if arrival.status < 400:
                        raise
                    del arrival.body[:]  # an error status is the answer: its body is only evidence
                arrival.whole = True
        except AnswerStillArriving:
            arrival.cut_off = True
        except (ConnectionFailedError, ValueError) as exc:
            arrival.failure = exc


def too_late(request: HttpRequest, arrival: Arrival) -> ConnectionFailedError:
    """The error of an attempt whose time ran out: before any answer (timed out), or while the answer was
    still arriving (``still_arriving``, with what had arrived)."""
    if arrival.status is None:
        return ConnectionFailedError(
            f"{request.url}: timed out (no answer within {request.timeout:g}s)",
            url=request.url,
            timed_out=True,
        )
    return ConnectionFailedError(
        f"{request.url}: the answer was still arriving after {request.timeout:g}s "
        f"(status {arrival.status}, {len(arrival.body)} bytes of the body so far)",
        url=request.url,
        timed_out=True,
        still_arriving=True,
        status=arrival.status,
        received=len(arrival.body),
    )


class OpenUrlDownload:
    """A release download into an open file; an HTTP error status fails it."""

    def __init__(self, validate_certs: bool = True, timeout: float = 30) -> None:
        self.validate_certs = validate_certs
        self.timeout = timeout

    def __call__(self, url: str, out: t.BinaryIO) -> None:
        request = HttpRequest(url, timeout=self.timeout, validate_certs=self.validate_certs)
        with answer_to(request, f"download of {url} failed") as response:
            if isinstance(response, urllib.error.HTTPError):
                raise ConnectionFailedError(
                    f"download of {url} failed: HTTP {response.code} {response.reason}", url=url
                )
            shutil.copyfileobj(response, out)
