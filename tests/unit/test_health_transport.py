"""The real transports the module injects (open_url fetch, TCP connect) against sockets on 127.0.0.1."""

from __future__ import annotations

import socket
import typing as t

import pytest
from ansible_collections.fleet.rollout.plugins.module_utils._errors import ConnectionFailedError
from ansible_collections.fleet.rollout.plugins.module_utils._health import tcp_connect
from ansible_collections.fleet.rollout.plugins.module_utils._http import HttpRequest, OpenUrlFetch

from tests.support import QuietHandler, closed_port, serve_http


class Handler(QuietHandler):
    def do_GET(self) -> None:
        code = 503 if self.path == "/down" else 200
        self.answer(code, f"{self.path} {self.headers.get('X-Probe', '-')}")


@pytest.fixture
def server() -> t.Iterator[str]:
    with serve_http(Handler) as url:
        yield url


def request(url: str, timeout: float = 2.0) -> HttpRequest:
    return HttpRequest(
        url=url, method="GET", headers={"X-Probe": "yes"}, timeout=timeout, validate_certs=True, ca_path=None
    )


def test_ok_answer_with_body_and_headers_sent(server: str) -> None:
    response = OpenUrlFetch()(request(f"{server}/health"))
    assert (response.status, response.body) == (200, b"/health yes")


def test_error_status_is_an_answer_not_an_exception(server: str) -> None:
    response = OpenUrlFetch()(request(f"{server}/down"))
    assert (response.status, response.body) == (503, b"/down yes")


def test_refused_connection_raises_connection_failed() -> None:
    url = f"http://127.0.0.1:{closed_port()}/"
    with pytest.raises(ConnectionFailedError, match="refused") as caught:
        OpenUrlFetch()(request(url))
    assert caught.value.details["url"] == url
    assert caught.value.details["timed_out"] is False  # refused is not slow: failure_threshold may count it


def test_a_silent_server_times_out_within_the_attempt_timeout() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/"
        with pytest.raises(ConnectionFailedError, match="timed out") as caught:
            OpenUrlFetch()(request(url, timeout=0.2))
    assert caught.value.details["timed_out"] is True  # a slow start: not counted within startup_grace


def test_tcp_connect_to_a_listening_port_and_to_a_closed_one() -> None:
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen(1)
        tcp_connect("127.0.0.1", listening.getsockname()[1], 1.0)
    port = closed_port()
    with pytest.raises(ConnectionFailedError, match=f"TCP connect to 127.0.0.1:{port} failed") as caught:
        tcp_connect("127.0.0.1", port, 1.0)
    assert caught.value.details["timed_out"] is False
