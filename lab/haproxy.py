"""The lab's balancers: real HAProxy processes from Debian's package, one config file each."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from lab.paths import InStateDir
from lab.service import start_detached

HAPROXY = "/usr/sbin/haproxy"
BACKEND = "app"
# Short checks keep tests quick; rise 2 means a server returns only after two good checks in a row.
# fastinter: the checks of a server on its way up or down (after an enable), whatever `inter` is.
CHECK_INTER_MS = 200
CHECK = "inter {inter}ms fastinter 100ms downinter 200ms rise 2 fall 2"


@dataclass(frozen=True)
class BalancerSpec:
    name: str
    frontend_port: int
    admin_port: int
    socket: Path
    state_dir: Path
    metrics_port: int | None = None  # HAProxy's built-in Prometheus exporter, at /metrics
    # a steady server's checks: a lab of hundreds of hosts checked every 200 ms keeps a core busy
    check_inter_ms: int = CHECK_INTER_MS

    @property
    def metrics_url(self) -> str | None:
        return None if self.metrics_port is None else f"http://127.0.0.1:{self.metrics_port}/metrics"

    config = InStateDir("haproxy.cfg")
    server_state_file = InStateDir("server-state")
    log = InStateDir("haproxy.log")


def render_config(spec: BalancerSpec, servers: list[tuple[str, str, int]]) -> str:
    """servers: (name, address, port) of every app host."""
    lines = [
        "global",
        f"    stats socket {spec.socket} mode 600 level admin expose-fd listeners",
        f"    stats socket ipv4@127.0.0.1:{spec.admin_port} level admin",
        "    stats timeout 30s",
        f"    server-state-file {spec.server_state_file}",
        "    log stderr format raw local0 notice",
        "",
        "defaults",
        "    mode http",
        "    log global",
        "    timeout connect 2s",
        "    timeout client 60s",
        "    timeout server 60s",
        "    timeout http-keep-alive 10s",
        # HAProxy's own default: retry a failed connect on the same server, never elsewhere, so a
        # lab test sees a badly drained host as a failed request instead of a hidden retry.
        "    retries 3",
        "    load-server-state-from-file global",
        "",
        "frontend fe_app",
        f"    bind 127.0.0.1:{spec.frontend_port}",
        f"    default_backend {BACKEND}",
        "",
        f"backend {BACKEND}",
        "    balance roundrobin",
        "    option httpchk GET /health",
        "    http-check expect status 200",
    ]
    # weight 100: room for a canary's share in percent (HAProxy's default weight is 1, of which 10% is 0)
    lines += [
        f"    server {name} {address}:{port} weight 100 check {CHECK.format(inter=spec.check_inter_ms)}"
        for name, address, port in servers
    ]
    if spec.metrics_port is not None:
        # Debian's HAProxy is built with the exporter (USE_PROMEX): every proxy's and server's counters.
        lines += [
            "",
            "frontend prometheus",
            f"    bind 127.0.0.1:{spec.metrics_port}",
            "    http-request use-service prometheus-exporter if { path /metrics }",
            "    no log",
        ]
    return "\n".join(lines) + "\n"


def start_haproxy(spec: BalancerSpec, servers: list[tuple[str, str, int]]) -> int:
    """Write the config, check it, start HAProxy in master-worker mode and return the master's pid."""
    spec.state_dir.mkdir(parents=True, exist_ok=True)
    spec.config.write_text(render_config(spec, servers))
    subprocess.run([HAPROXY, "-c", "-q", "-f", str(spec.config)], check=True)
    process = start_detached([HAPROXY, "-W", "-db", "-f", str(spec.config)], spec.log)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"haproxy {spec.name} exited with {process.returncode}; see {spec.log}")
        if spec.socket.exists() and admin_answers(spec.socket):
            return process.pid
        time.sleep(0.02)
    raise RuntimeError(f"haproxy {spec.name} did not open {spec.socket} in time")


def runtime_command(sock: Path, command: str, timeout: float = 5.0) -> str:
    """One runtime-API command over the unix socket; the lab's own minimal client."""
    if "\n" in command or ";" in command:
        raise ValueError(f"one command at a time: {command!r}")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(timeout)
        conn.connect(str(sock))
        conn.sendall(command.encode() + b"\n")
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode()


def admin_answers(sock: Path) -> bool:
    try:
        return "Name:" in runtime_command(sock, "show info", timeout=1.0)
    except OSError:
        return False


def show_stat(sock: Path) -> list[dict[str, str]]:
    """Rows of `show stat` for the app backend's servers, as column -> value."""
    text = runtime_command(sock, "show stat")
    header, *rows = [line for line in text.splitlines() if line.strip()]
    columns = header.lstrip("# ").split(",")
    parsed = [dict(zip(columns, row.split(","), strict=False)) for row in rows]
    return [
        row for row in parsed if row["pxname"] == BACKEND and row["svname"] not in ("BACKEND", "FRONTEND")
    ]


def save_server_state(spec: BalancerSpec) -> None:
    """What a reload keeps: the runtime state dumped where load-server-state-from-file reads it."""
    spec.server_state_file.write_text(runtime_command(spec.socket, "show servers state"))


def worker_pid(sock: Path) -> int | None:
    """The pid of the HAProxy process answering on the socket (``show info``)."""
    try:
        info = runtime_command(sock, "show info", timeout=1.0)
    except OSError:
        return None
    for line in info.splitlines():
        name, _, value = line.partition(":")
        if name == "Pid" and value.strip().isdigit():
            return int(value.strip())
    return None


def reload_haproxy(spec: BalancerSpec, master_pid: int, keep_state: bool) -> int:
    """Reload as config management does (SIGUSR2 to the master: a new worker, the old one finishing its
    connections); with keep_state, the runtime state saved first for load-server-state-from-file, else
    the new worker starts from the config (and whatever stale state file there is). The new worker's pid,
    once it answers."""
    before = worker_pid(spec.socket)
    if keep_state:
        save_server_state(spec)
    os.kill(master_pid, signal.SIGUSR2)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        pid = worker_pid(spec.socket)
        if pid is not None and pid != before:
            return pid
        time.sleep(0.005)
    raise RuntimeError(f"haproxy {spec.name} did not answer from a new worker within 10 s of SIGUSR2")
