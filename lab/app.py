"""The lab's sample app: one file, stdlib only, shipped inside every release artifact.

It reads ``release.json`` beside itself for its version and behaviour, so a test makes a bad release by
building one with, say, ``health_fail``. Run as ``python3 app.py --name app01 --address 127.0.1.1 --port P``.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

MAX_SLOW_SECONDS = 120.0


class Behaviour:
    """What a release does, read from its release.json."""

    def __init__(self, raw: dict[str, Any], host: str) -> None:
        self.version = str(raw["version"])
        self.warmup = float(raw.get("warmup", 0.0))
        fail_hosts = raw.get("fail_hosts") or []
        self.health_fail = bool(raw.get("health_fail", False)) or host in fail_hosts
        error_hosts = raw.get("error_hosts") or []
        self.error_rate = float(raw.get("error_rate", 0.0)) if not error_hosts or host in error_hosts else 0.0
        self.latency = float(raw.get("latency", 0.0))
        self.crash = bool(raw.get("crash", False))


class App:
    """State shared by the request handlers: behaviour, start time, error-rate counter."""

    def __init__(self, name: str, behaviour: Behaviour) -> None:
        self.name = name
        self.behaviour = behaviour
        self.started = time.monotonic()
        self._served = 0
        self._lock = threading.Lock()

    def warm(self) -> bool:
        return time.monotonic() - self.started >= self.behaviour.warmup

    def next_is_error(self) -> bool:
        """Deterministic share of errors: request n fails when floor(n*rate) steps up."""
        with self._lock:
            self._served += 1
            n = self._served
        rate = self.behaviour.error_rate
        return int(n * rate) > int((n - 1) * rate)


class Handler(BaseHTTPRequestHandler):
    server: AppServer
    # One request per connection: a kept-alive idle connection would hold a graceful stop open.
    protocol_version = "HTTP/1.0"
    timeout = 30
    # Buffered: the headers and the body leave in one write. HAProxy's check resets the connection once it
    # has read the status line, and a body written after that fails (a traceback per check, which costs the
    # machine more CPU than the checks themselves).
    wbufsize = -1

    def do_GET(self) -> None:
        app = self.server.app
        url = urlsplit(self.path)
        if url.path == "/health":
            self._health(app)
            return
        if app.behaviour.latency:
            time.sleep(app.behaviour.latency)
        if url.path == "/slow":
            seconds = float(parse_qs(url.query).get("seconds", ["1"])[0])
            time.sleep(min(max(seconds, 0.0), MAX_SLOW_SECONDS))
        elif url.path != "/":
            self._answer(404, "not found\n")
            return
        if app.next_is_error():
            self._answer(500, f"error {app.behaviour.version} {app.name}\n")
            return
        self._answer(200, f"{app.behaviour.version} {app.name}\n")

    def _health(self, app: App) -> None:
        if app.behaviour.health_fail:
            status, state = 500, "failing"
        elif not app.warm():
            status, state = 503, "warming up"
        else:
            status, state = 200, "ok"
        body = json.dumps({"status": state, "version": app.behaviour.version, "host": app.name})
        self._answer(status, body + "\n", "application/json")

    def _answer(self, status: int, body: str, content_type: str = "text/plain") -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Version", self.server.app.behaviour.version)
        self.send_header("X-Host", self.server.app.name)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the traffic recorder keeps the evidence; stderr stays for crashes."""


class AppServer(ThreadingHTTPServer):
    # Graceful stop: server_close() joins the threads of requests still in flight.
    daemon_threads = False
    block_on_close = True
    # A listen backlog like a real server's (nginx: 511), not socketserver's 5: a balancer resuming after
    # a stall (SIGSTOP) opens every connection it queued to the servers left in rotation at once, and a
    # backlog of 5 drops their SYNs, which HAProxy's connect retries outlast a client's patience.
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], app: App) -> None:
        super().__init__(address, Handler)
        self.app = app

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away (a check's reset, a timed-out request) is no error of the server's."""
        if not isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            super().handle_error(request, client_address)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--name", required=True)
    parser.add_argument("--address", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--root", help="the host's root; names the process for its service control")
    args = parser.parse_args(argv)

    raw = json.loads((Path(__file__).resolve().parent / "release.json").read_text())
    behaviour = Behaviour(raw, args.name)
    if behaviour.crash:
        print(f"{args.name}: release {behaviour.version} crashes at start", file=sys.stderr)
        return 3
    server = AppServer((args.address, args.port), App(args.name, behaviour))

    def on_sigterm(_signum: int, _frame: object) -> None:
        # shutdown() blocks until serve_forever returns, so it cannot run in the serving thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_sigterm)
    print(
        f"{args.name}: {behaviour.version} serving on {args.address}:{args.port}", file=sys.stderr, flush=True
    )
    server.serve_forever(poll_interval=0.1)
    server.server_close()
    print(f"{args.name}: stopped after finishing requests in flight", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
