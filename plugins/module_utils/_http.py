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
import typing as t
import urllib.error

from ansible.module_utils.urls import ConnectionError as UrlConnectionError
from ansible.module_utils.urls import open_url
from ansible_collections.fleet.rollout.plugins.module_utils._errors import ConnectionFailedError

# socket.timeout is not TimeoutError before Python 3.10; module code also runs on 3.7 targets.
TIMEOUT_ERRORS = (socket.timeout, TimeoutError)
MAX_BODY_BYTES = 1024 * 1024  # what body_regex and json_query see; a health page is small
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


class OpenUrlFetch:
    """A health check's request: its status and the start of its body, whatever the status."""

    def __call__(self, request: HttpRequest) -> HttpResponse:
        with answer_to(request, request.url, "fleet.rollout-health_check") as response:
            status = int(getattr(response, "status", None) or response.code)
            try:
                body = response.read(MAX_BODY_BYTES)
            except NO_ANSWER:
                if status < 400:
                    raise
                body = b""  # an error status is the answer: its body is only evidence
            return HttpResponse(status=status, body=body)


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
