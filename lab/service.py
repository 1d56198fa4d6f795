"""Service control for one lab app host: ``appctl start|stop|restart|status|kill``.

The lab copies this file to ``<root>/bin/appctl`` of every host, with the lab's Python in the shebang,
so a playbook controls a host's app the way it would call ``systemctl``. Stdlib only; it reads
``<root>/service.json`` (name, address, port, python) and runs ``<root>/current/app.py``.

``start`` returns once the app accepts connections, or fails with the tail of its log if the process
dies first (like a systemd notify unit); ``stop`` sends SIGTERM and waits until the process is gone, so
requests in flight finish first.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

POLL_SECONDS = 0.02
START_DEADLINE = 15.0
STOP_DEADLINE = 60.0


class ServiceError(Exception):
    """The command could not do what it was asked; the message says why."""


class AppService:
    """The app process of one host, tracked by a pid file under the host's root."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def config(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads((self.root / "service.json").read_text())
        return loaded

    @property
    def pid_file(self) -> Path:
        return self.root / "run" / "app.pid"

    @property
    def log_file(self) -> Path:
        return self.root / "log" / "app.log"

    def pid(self) -> int | None:
        """The pid of our running app, or None; a stale pid file or a reused pid does not count."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        return pid if process_is_ours(pid, str(self.root)) else None

    def start(self) -> str:
        running = self.pid()
        if running:
            return f"already running (pid {running})"
        current = self.root / "current"
        if not (current / "app.py").is_file():
            raise ServiceError(f"no release to start: {current}/app.py does not exist")
        release = current.resolve()  # the process keeps its release even when `current` moves on
        cfg = self.config
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        log_offset = self.log_file.stat().st_size if self.log_file.exists() else 0
        process = start_detached(
            [
                *(cfg["python"], str(release / "app.py"), "--name", cfg["name"]),
                *("--address", cfg["address"], "--port", str(cfg["port"]), "--root", str(self.root)),
            ],
            self.log_file,
            cwd=release,
        )
        write_atomically(self.pid_file, f"{process.pid}\n")
        deadline = time.monotonic() + START_DEADLINE
        while time.monotonic() < deadline:
            if process.poll() is not None:
                self.pid_file.unlink(missing_ok=True)
                tail = self.log_file.read_bytes()[log_offset:].decode(errors="replace").strip()[-400:]
                raise ServiceError(
                    f"{cfg['name']}: app exited with code {process.returncode} at start: {tail}"
                )
            if accepts_connections(cfg["address"], int(cfg["port"])):
                return f"started (pid {process.pid}, release {release.name})"
            time.sleep(POLL_SECONDS)
        raise ServiceError(f"{cfg['name']}: app did not listen on {cfg['address']}:{cfg['port']} in time")

    def stop(self, sig: int = signal.SIGTERM) -> str:
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return "not running"
        os.kill(pid, sig)
        deadline = time.monotonic() + STOP_DEADLINE
        while process_is_ours(pid, str(self.root)):
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                deadline = time.monotonic() + STOP_DEADLINE
            time.sleep(POLL_SECONDS)
        self.pid_file.unlink(missing_ok=True)
        return f"stopped (pid {pid})"

    def status(self) -> dict[str, Any]:
        pid = self.pid()
        current = self.root / "current"
        return {
            "name": self.config["name"],
            "running": pid is not None,
            "pid": pid,
            "current": current.resolve().name if current.exists() else None,
        }


def start_detached(command: list[str], log: Path, cwd: Path | None = None) -> subprocess.Popen[bytes]:
    """Start ``command`` in a session of its own (a Ctrl-C of the caller does not reach it), its input
    closed, its output and errors appended to ``log``: how the lab starts every process it runs."""
    with log.open("ab") as out:
        return subprocess.Popen(
            command, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True
        )


def process_is_ours(pid: int, marker: str) -> bool:
    """True while pid is a live (not zombie) process whose command line names our root."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except (FileNotFoundError, ProcessLookupError):
        return False
    state = stat.rsplit(")", 1)[1].split()[0]
    return state not in ("Z", "X") and marker in cmdline


def accepts_connections(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=0.5):
            return True
    except OSError:
        return False


def write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def main(argv: list[str]) -> int:
    usage = "usage: appctl start|stop|restart|status|kill"
    if len(argv) != 2:
        print(usage, file=sys.stderr)
        return 2
    service = AppService(Path(os.environ.get("APPCTL_ROOT") or Path(__file__).resolve().parent.parent))
    command = argv[1]
    try:
        if command == "start":
            print(service.start())
        elif command == "stop":
            print(service.stop())
        elif command == "kill":
            print(service.stop(signal.SIGKILL))
        elif command == "restart":
            print(service.stop())
            print(service.start())
        elif command == "status":
            state = service.status()
            print(json.dumps(state))
            return 0 if state["running"] else 3
        else:
            print(usage, file=sys.stderr)
            return 2
    except ServiceError as error:
        print(f"appctl: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
