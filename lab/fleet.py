"""The lab: real HAProxy balancers in front of N real app hosts, all on 127.0.0.0/8; optionally a real
Prometheus scraping the balancers' built-in exporters.

State lives in one directory (``lab.json`` names every pid and port); ``down`` stops exactly those
pids, sweeps any process whose command line names this lab, and frees the port block.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import tarfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.error import URLError
from urllib.request import urlopen

from lab import haproxy, ports, sshd
from lab.inventory import write_inventory
from lab.paths import InStateDir
from lab.prometheus import PrometheusSpec, start_prometheus
from lab.release import ReleaseBehaviour, build_release
from lab.service import AppService, ServiceError, write_atomically

LAB_FILES = Path(__file__).resolve().parent
UP_DEADLINE = 30.0
STOP_GRACE = 5.0


class LabError(RuntimeError):
    """The lab could not do what was asked; the message says what and where."""


@dataclass(frozen=True)
class HostInfo:
    name: str
    address: str
    port: int
    root: Path

    @property
    def url(self) -> str:
        return f"http://{self.address}:{self.port}/"

    @property
    def health_url(self) -> str:
        return self.url + "health"

    @property
    def appctl(self) -> Path:
        return self.root / "bin" / "appctl"

    @property
    def service(self) -> AppService:
        return AppService(self.root)

    def start(self) -> str:
        return self.service.start()

    def stop(self) -> str:
        return self.service.stop()

    def kill(self) -> str:
        return self.service.stop(signal.SIGKILL)

    def restart(self) -> str:
        self.service.stop()
        return self.service.start()

    def current_release(self) -> str | None:
        current = self.root / "current"
        return current.resolve().name if current.exists() else None


def _loopback_url(scheme: str, port: int, path: str = "") -> str:
    """A balancer listens on 127.0.0.1 only, on each of its ports."""
    return f"{scheme}://127.0.0.1:{port}{path}"


@dataclass(frozen=True)
class BalancerInfo:
    name: str
    socket: Path
    admin_port: int
    frontend_port: int
    state_dir: Path
    backend: str = haproxy.BACKEND
    metrics_port: int | None = None
    check_inter_ms: int = haproxy.CHECK_INTER_MS

    @property
    def admin_url(self) -> str:
        return _loopback_url("tcp", self.admin_port)

    @property
    def frontend_url(self) -> str:
        return _loopback_url("http", self.frontend_port, "/")

    @property
    def metrics_url(self) -> str | None:
        """HAProxy's Prometheus exporter of this balancer (None for a lab from before it had one)."""
        return self.spec.metrics_url

    @property
    def spec(self) -> haproxy.BalancerSpec:
        return haproxy.BalancerSpec(
            self.name,
            self.frontend_port,
            self.admin_port,
            self.socket,
            self.state_dir,
            self.metrics_port,
            self.check_inter_ms,
        )


class Lab:
    """A lab rooted at state_dir; ``up`` builds it, ``down`` removes every trace of its processes."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir

    # ---- state ---------------------------------------------------------------------------------
    state_file = InStateDir("lab.json")
    inventory = InStateDir("inventory.yml")
    artifacts = InStateDir("artifacts")

    def state(self) -> dict[str, Any]:
        try:
            loaded: dict[str, Any] = json.loads(self.state_file.read_text())
        except FileNotFoundError as missing:
            raise LabError(f"no lab at {self.state_dir} (run `python -m lab up` first)") from missing
        return loaded

    def is_up(self) -> bool:
        return self.state_file.exists()

    @property
    def hosts(self) -> list[HostInfo]:
        return [HostInfo(h["name"], h["address"], h["port"], Path(h["root"])) for h in self.state()["hosts"]]

    @property
    def balancers(self) -> list[BalancerInfo]:
        return [
            BalancerInfo(
                b["name"],
                Path(b["socket"]),
                b["admin_port"],
                b["frontend_port"],
                Path(b["state_dir"]),
                metrics_port=b.get("metrics_port"),
                check_inter_ms=b.get("check_inter_ms", haproxy.CHECK_INTER_MS),
            )
            for b in self.state()["balancers"]
        ]

    @property
    def ssh_port(self) -> int | None:
        """The port sshd listens on at every host's address, when the lab was started with ssh."""
        port: int | None = self.state().get("ssh_port")
        return port

    @property
    def frontend_url(self) -> str:
        return self.balancers[0].frontend_url

    @property
    def prometheus_url(self) -> str | None:
        """The lab's Prometheus (``up(prometheus=True)``), or None when it runs none."""
        running: dict[str, Any] | None = self.state().get("prometheus")
        return None if running is None else str(running["url"])

    def host(self, name: str) -> HostInfo:
        for host in self.hosts:
            if host.name == name:
                return host
        raise LabError(f"no host {name!r} in this lab")

    def balancer(self, name: str) -> BalancerInfo:
        for balancer in self.balancers:
            if balancer.name == name:
                return balancer
        raise LabError(f"no balancer {name!r} in this lab")

    def _save(self, state: dict[str, Any]) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        write_atomically(self.state_file, json.dumps(state, indent=2, default=str) + "\n")

    # ---- up ------------------------------------------------------------------------------------
    def up(
        self,
        hosts: int = 3,
        balancers: int = 1,
        port: int | None = None,
        version: str = "v1",
        ssh: bool = False,
        *,
        prometheus: bool = False,
        check_inter_ms: int = haproxy.CHECK_INTER_MS,
    ) -> None:
        if not 1 <= hosts <= 250:
            raise LabError(f"--hosts must be between 1 and 250, got {hosts}")
        if not 1 <= balancers <= ports.MAX_BALANCERS:
            raise LabError(f"--balancers must be between 1 and {ports.MAX_BALANCERS}, got {balancers}")
        if self.is_up():
            self.down()  # a lab left behind here (a killed test) goes first
        # Every lab starts from v1 only: releases left by an earlier lab here would change the story.
        shutil.rmtree(self.state_dir / "hosts", ignore_errors=True)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        block = ports.claim_block(self.state_dir, hosts, port)
        state: dict[str, Any] = {"starting": True, "base_port": block.base, "run_dir": str(block.run_dir)}
        state["ssh_port"] = block.ssh if ssh else None
        state["prometheus_port"] = block.prometheus if prometheus else None
        state["prometheus"] = None  # {"pid", "url"} once it runs
        state["pids"] = []
        state["hosts"] = [
            {
                "name": f"app{i:02d}",
                "address": ports.host_address(i),
                "port": block.app,
                "root": str(self.state_dir.resolve() / "hosts" / f"app{i:02d}"),
            }
            for i in range(1, hosts + 1)
        ]
        state["balancers"] = [
            {
                "name": f"lb{i + 1}",
                "socket": str(block.run_dir / f"lb{i + 1}.sock"),
                "admin_port": block.admin(i),
                "frontend_port": block.frontend(i),
                "metrics_port": block.metrics(i),
                "state_dir": str(self.state_dir.resolve() / f"lb{i + 1}"),
                "check_inter_ms": check_inter_ms,
            }
            for i in range(balancers)
        ]
        self._save(state)
        try:
            self._start(state, version)
        except (LabError, ServiceError, RuntimeError, OSError) as error:
            self.down()
            raise LabError(f"lab up failed: {error}") from error

    def _start(self, state: dict[str, Any], version: str) -> None:
        artifact = build_release(version, self.artifacts)
        for host in self.hosts:
            self._prepare_host(host)
            install_artifact(host.root, version, artifact)
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(lambda h: h.start(), self.hosts))
        state["pids"] = [pid for h in self.hosts if (pid := h.service.pid())]
        self._save(state)
        servers = [(h.name, h.address, h.port) for h in self.hosts]
        for balancer in self.balancers:
            master = haproxy.start_haproxy(balancer.spec, servers)
            state["pids"].append(master)
            state.setdefault("balancer_masters", {})[balancer.name] = master
            self._save(state)
        if state["ssh_port"]:
            addresses = [h.address for h in self.hosts]
            state["pids"].append(sshd.start_sshd(self.state_dir.resolve(), addresses, state["ssh_port"]))
            self._save(state)
        if state["prometheus_port"]:
            spec = PrometheusSpec(state["prometheus_port"], self.state_dir.resolve() / "prometheus")
            targets = {b.name: f"127.0.0.1:{b.metrics_port}" for b in self.balancers}
            pid = start_prometheus(spec, targets)
            state["pids"].append(pid)
            state["prometheus"] = {"pid": pid, "url": spec.url}
            self._save(state)
        write_inventory(self)
        self.wait_all_up()
        state["starting"] = False
        self._save(state)

    def _prepare_host(self, host: HostInfo) -> None:
        (host.root / "releases").mkdir(parents=True, exist_ok=True)
        (host.root / "bin").mkdir(exist_ok=True)
        config = {"name": host.name, "address": host.address, "port": host.port, "python": sys.executable}
        (host.root / "service.json").write_text(json.dumps(config, indent=2) + "\n")
        script = (LAB_FILES / "service.py").read_text()
        host.appctl.write_text(f"#!{sys.executable}\n{script}")
        host.appctl.chmod(0o755)

    def wait_all_up(self, deadline: float = UP_DEADLINE) -> None:
        """Poll until every balancer reports every server UP."""
        end = time.monotonic() + deadline
        while True:
            not_up = [
                f"{b.name}/{row['svname']}={row['status']}"
                for b in self.balancers
                for row in haproxy.show_stat(b.socket)
                if row["status"] != "UP"
            ]
            if not not_up:
                return
            if time.monotonic() > end:
                raise LabError(f"servers not UP after {deadline:.0f}s: {', '.join(not_up)}")
            time.sleep(0.05)

    # ---- operations tests use ------------------------------------------------------------------
    def build(self, version: str, **behaviour: Any) -> Path:
        """Build a release artifact of the sample app in this lab's artifacts directory."""
        for hosts in ("fail_hosts", "error_hosts"):
            if hosts in behaviour:
                behaviour[hosts] = tuple(behaviour[hosts])
        return build_release(version, self.artifacts, ReleaseBehaviour(**behaviour))

    def install(self, host_name: str, version: str, **behaviour: Any) -> None:
        """Put a release on one host and restart it, behind the balancers' back (for tests)."""
        host = self.host(host_name)
        install_artifact(host.root, version, self.build(version, **behaviour))
        host.service.stop()
        try:
            host.service.start()
        except ServiceError:
            if not behaviour.get("crash"):
                raise

    def reload_balancer(self, balancer_name: str, keep_state: bool = False) -> int:
        """Reload one balancer (see haproxy.reload_haproxy); the new worker's pid."""
        master = self.state().get("balancer_masters", {}).get(balancer_name)
        if master is None:
            raise LabError(f"no master pid recorded for balancer {balancer_name!r}")
        return haproxy.reload_haproxy(self.balancer(balancer_name).spec, master, keep_state)

    def runtime(self, balancer_name: str, command: str) -> str:
        return haproxy.runtime_command(self.balancer(balancer_name).socket, command)

    def status(self) -> dict[str, Any]:
        """Every host's current release, running version, and each balancer's view of it."""
        views = {b.name: {row["svname"]: row for row in haproxy.show_stat(b.socket)} for b in self.balancers}
        report: dict[str, Any] = {
            "frontend": self.frontend_url,
            "prometheus": self.prometheus_url,
            "hosts": [],
        }
        for host in self.hosts:
            service = host.service.status()
            report["hosts"].append(
                {
                    "name": host.name,
                    "address": f"{host.address}:{host.port}",
                    "current": host.current_release(),
                    "running": running_version(host) if service["running"] else None,
                    "pid": service["pid"],
                    "balancers": {
                        name: {
                            "status": view[host.name]["status"],
                            "weight": int(view[host.name]["weight"] or 0),
                            "sessions": int(view[host.name]["scur"] or 0),
                            "check": view[host.name]["check_status"],
                        }
                        for name, view in views.items()
                    },
                }
            )
        return report

    # ---- down ----------------------------------------------------------------------------------
    def down(self) -> list[str]:
        """Stop every process of this lab by pid and free its ports; returns what was stopped."""
        try:
            state = self.state()
        except LabError:
            return []
        stopped: list[str] = []
        for host in self.hosts:
            pid = host.service.pid()
            if pid:
                terminate(pid, STOP_GRACE)
                stopped.append(f"{host.name} (pid {pid})")
        for pid in state.get("pids", []):
            if ports.pid_alive(pid):
                terminate(pid, STOP_GRACE)
                stopped.append(f"pid {pid}")
        # Trailing slash: /x/lab must not match a neighbour lab at /x/lab2.
        markers = [f"{self.state_dir.resolve()}/"]
        if state.get("run_dir"):
            markers.append(f"{state['run_dir']}/")
        for pid in pids_naming(markers):
            terminate(pid, STOP_GRACE)
            stopped.append(f"leftover pid {pid}")
        if state.get("base_port") is not None:
            ports.release_block(ports.PortBlock(state["base_port"]))
        self.state_file.unlink(missing_ok=True)
        return stopped


def install_artifact(root: Path, version: str, artifact: Path) -> None:
    """The lab's own bootstrap install: unpack into releases/<version>, point `current` at it."""
    target = root / "releases" / version
    if target.exists():
        shutil.rmtree(target)
    staging = root / "releases" / f".{version}.unpack"
    shutil.rmtree(staging, ignore_errors=True)
    with tarfile.open(artifact) as tar:
        tar.extractall(staging, filter="data")
    staging.rename(target)
    link = root / ".current.new"
    link.unlink(missing_ok=True)
    link.symlink_to(Path("releases") / version)
    os.replace(link, root / "current")


def running_version(host: HostInfo) -> str | None:
    try:
        with urlopen(host.url, timeout=2) as answer:
            return str(answer.headers.get("X-Version"))
    except (URLError, OSError):
        return None


def terminate(pid: int, grace: float) -> None:
    """SIGTERM, wait up to grace seconds, then SIGKILL; returns when the pid is gone."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    end = time.monotonic() + grace
    while ports.pid_alive(pid):
        if time.monotonic() > end:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                return
            end = time.monotonic() + grace
        time.sleep(0.02)


def pids_naming(markers: list[str]) -> list[int]:
    """Live processes whose command line contains one of markers (this lab's directories)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if any(marker in cmdline for marker in markers) and ports.pid_alive(int(proc.name)):
            found.append(int(proc.name))
    return found


def state_of(lab: Lab) -> dict[str, Any]:
    """The lab's description for printing: hosts, balancers, inventory."""
    return {
        "state_dir": str(lab.state_dir),
        "inventory": str(lab.inventory),
        "frontend": lab.frontend_url,
        "prometheus": lab.prometheus_url,
        "balancers": [
            {
                **asdict(b),
                "admin_url": b.admin_url,
                "frontend_url": b.frontend_url,
                "metrics_url": b.metrics_url,
            }
            for b in lab.balancers
        ],
        "hosts": [{**asdict(h), "url": h.url} for h in lab.hosts],
    }


def format_status(report: dict[str, Any]) -> str:
    """status() as one line per host, for people."""
    rows = [f"frontend {report['frontend']}"]
    if report.get("prometheus"):
        rows.append(f"prometheus {report['prometheus']}")
    for host in report["hosts"]:
        views = " ".join(
            f"{name}:{view['status']}/w{view['weight']}/s{view['sessions']}"
            for name, view in host["balancers"].items()
        )
        rows.append(
            f"{host['name']} {host['address']} current={host['current']} running={host['running']} {views}"
        )
    return "\n".join(rows)
