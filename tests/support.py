"""Helpers for tests that run real ansible-playbook commands against the lab or localhost, and for tests
that talk to a throwaway HTTP server on 127.0.0.1."""

from __future__ import annotations

import contextlib
import functools
import io
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import tarfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from lab.haproxy import show_stat
from lab.traffic import Traffic, TrafficResult

if TYPE_CHECKING:
    from lab.fleet import Lab

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"
VENV_PYTHON = VENV_BIN / "python"


@dataclass
class PlaybookRun:
    rc: int
    stdout: str
    stderr: str

    def recap(self, host: str) -> dict[str, int]:
        """The PLAY RECAP counters of one host (ok, changed, failed, ...)."""
        for line in self.stdout.splitlines():
            name, _, counters = line.partition(" : ")
            if name.strip() == host and counters:
                pairs = (item.split("=") for item in counters.split())
                return {key: int(value) for key, value in pairs}
        raise AssertionError(f"no recap for {host} in:\n{self.stdout[-3000:]}")

    def evidence(self) -> str:
        """What an assertion on a failed run shows: every failure line (a long run's tail loses the first
        one, which says why), then the tail."""
        failures = [line for line in self.stdout.splitlines() if "FAILED!" in line or "failed at '" in line]
        return "\n".join(failures[:10]) + "\n...\n" + self.stdout[-2500:]


@dataclass(frozen=True)
class Core:
    """One ansible-core of the version matrix: its venv and its version."""

    venv: Path
    version: str

    @property
    def ansible_playbook(self) -> Path:
        return self.venv / "bin" / "ansible-playbook"

    @property
    def python(self) -> Path:
        """Its python, which tests also give the hosts as their interpreter."""
        return self.venv / "bin" / "python"

    @property
    def at_least_2_19(self) -> bool:
        major, minor = (int(part) for part in self.version.split(".")[:2])
        return (major, minor) >= (2, 19)


def core_matrix() -> list[object]:
    """pytest params of the version matrix `make setup` makes: .venv (2.19), 2.17 and the newest; a venv
    that is missing is a skipped param that says so."""
    params: list[object] = []
    for name in (".venv", ".venv-core-2.17", ".venv-core-latest"):
        venv = ROOT / name
        releases = sorted(venv.glob("lib/python3*/site-packages/ansible/release.py"))
        found = re.search(r"__version__ = ['\"]([^'\"]+)", releases[0].read_text()) if releases else None
        if found is None or not (venv / "bin" / "ansible-playbook").exists():
            reason = f"no {name}: run `make setup` (.venv-core-latest needs a python3.13)"
            params.append(pytest.param(None, id=f"{name}-absent", marks=pytest.mark.skip(reason=reason)))
        else:
            params.append(pytest.param(Core(venv, found.group(1)), id=f"core-{found.group(1)}"))
    return params


def ansible_env(**extra: str) -> dict[str, str]:
    """Environment for ansible-* commands: this checkout as fleet.rollout, quiet and colourless."""
    env = {**os.environ}
    env.update(
        ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".tmp" / "collections"),
        ANSIBLE_HOST_KEY_CHECKING="False",
        ANSIBLE_RETRY_FILES_ENABLED="False",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        ANSIBLE_LOCALHOST_WARNING="False",
        ANSIBLE_INVENTORY_UNPARSED_WARNING="False",
        PATH=f"{VENV_BIN}:{env.get('PATH', '')}",
    )
    env.update(extra)
    return env


def empty_config(directory: Path) -> Path:
    """An empty ansible.cfg: ansible-core 2.19 refuses ANSIBLE_CONFIG=/dev/null (no .cfg extension)."""
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "ansible.cfg"
    config.write_text("")
    return config


def run_on_localhost(
    playbook: Path, *args: str, python: Path | str = VENV_BIN / "python", **options: Any
) -> PlaybookRun:
    """``run_playbook`` on localhost over the local connection, with ``python`` as its interpreter."""
    local = ("-c", "local", "-e", f"ansible_python_interpreter={python}")
    return run_playbook(playbook, "localhost,", *local, *args, **options)


def run_playbook(
    playbook: Path,
    inventory: Path | str,
    *args: str,
    timeout: float = 600,
    ansible_playbook: Path | str = VENV_BIN / "ansible-playbook",
    cwd: Path | str | None = None,
    **env: str,
) -> PlaybookRun:
    """Run a real ansible-playbook (this checkout's unless told) from ``cwd`` (this one unless told); tests
    assert on rc, the recap and the output."""
    done = subprocess.run(
        [str(ansible_playbook), "-i", str(inventory), str(playbook), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=ansible_env(**env),
        check=False,
    )
    return PlaybookRun(done.returncode, done.stdout, done.stderr)


def run_deploy(
    inventory: Path | str, version: str, artifact: Path, *args: str, timeout: float = 600, **env: str
) -> PlaybookRun:
    """Run the deploy playbook (fleet.rollout.deploy) of ``version`` from ``artifact``; ``args`` come after
    those two ``-e``."""
    return run_playbook(
        Path("fleet.rollout.deploy"),
        inventory,
        "-e",
        f"deploy_version={version}",
        "-e",
        f"deploy_artifact={artifact}",
        *args,
        timeout=timeout,
        **env,
    )


@contextmanager
def traffic(lab: Lab, rate: float) -> Iterator[Traffic]:
    """Steady requests through the frontend from a background thread while the block runs; stopped after
    (``wait()`` then returns every request's record)."""
    load = Traffic(lab.frontend_url, rate=rate, seconds=600).start()
    try:
        yield load
    finally:
        load.stop()


def deploy_under_traffic(
    lab: Lab, version: str, *extra: str, rate: float, lead: float = 1.0, **behaviour: object
) -> tuple[PlaybookRun, TrafficResult]:
    """``run_deploy`` of ``version`` (built with ``behaviour``) on the lab, ``extra`` its arguments, while
    ``rate`` requests a second flow through the frontend from ``lead`` seconds before it starts to half a
    second after it ends; returns the run and every request's record."""
    with traffic(lab, rate) as load:
        time.sleep(lead)  # traffic is flowing before the rollout starts
        run = run_deploy(lab.inventory, version, lab.build(version, **behaviour), *extra)
        time.sleep(0.5)
    return run, load.wait()


def app_pids(lab: Lab) -> dict[str, int | None]:
    """Every lab host's app process: a host whose pid is the same after a run was never restarted."""
    return {host.name: host.service.pid() for host in lab.hosts}


def fleet_state(lab: Lab) -> dict[str, tuple[str | None, str]]:
    """Every lab host's current release and its status on the first balancer."""
    status = {row["svname"]: row["status"] for row in show_stat(lab.balancers[0].socket)}
    return {host.name: (host.current_release(), status[host.name]) for host in lab.hosts}


def deploy_report(run: PlaybookRun) -> dict[str, Any]:
    """The message of the deploy playbook's report play, as JSON."""
    text = run.stdout[run.stdout.index("PLAY [Report how the rollout ended]") :]
    start = text.index("{")
    ends = [i for i in (text.find("\nTASK [", start), text.find("\nPLAY RECAP", start)) if i >= 0]
    body = text[start : min(ends)]
    return dict(json.loads(body)["msg"])


def make_tar(path: Path, files: dict[str, str]) -> Path:
    """A tar.gz at ``path`` of text files (name: content), mode 0644."""
    with tarfile.open(path, "w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return path


def write_play(path: Path, tasks: list[dict[str, Any]], hosts: str = "localhost") -> Path:
    """A playbook of one play of ``tasks`` on ``hosts``, without gathering facts."""
    play = {"hosts": hosts, "gather_facts": False, "tasks": tasks}
    path.write_text(json.dumps([play], indent=2))  # JSON is YAML
    return path


def record(directory: Path, name: str, expression: str) -> dict[str, Any]:
    """A task that saves ``expression`` as JSON in ``<directory>/<name>@<host>.json``, in check mode too."""
    return {
        "name": f"record {name}",
        "ansible.builtin.copy": {
            "content": f"{{{{ {expression} | to_json }}}}",
            "dest": f"{directory}/{name}@{{{{ inventory_hostname }}}}.json",
            "mode": "0600",
        },
        "check_mode": False,
        "changed_when": False,
    }


def recorded(directory: Path) -> dict[str, Any]:
    """What the ``record`` tasks saved: by name for localhost, by ``name@host`` for the other hosts."""
    results = {}
    for saved in directory.glob("*@*.json"):
        name, _, host = saved.stem.partition("@")
        results[name if host == "localhost" else f"{name}@{host}"] = json.loads(saved.read_text())
    return results


def run_play(
    directory: Path,
    tasks: list[dict[str, Any]],
    *args: str,
    inventory: Path | str,
    hosts: str = "localhost",
    timeout: float = 600,
    ansible_playbook: Path | str = VENV_BIN / "ansible-playbook",
    **env: str,
) -> tuple[PlaybookRun, dict[str, Any]]:
    """Run one play of ``tasks`` from ``directory`` with an empty ansible.cfg (and ``ansible_playbook``);
    return the run and what its ``record`` tasks saved (in ``directory``) this time."""
    directory.mkdir(parents=True, exist_ok=True)
    for old in directory.glob("*@*.json"):
        old.unlink()
    playbook = write_play(directory / "playbook.yml", tasks, hosts)
    config = str(empty_config(directory))
    done = run_playbook(
        playbook,
        inventory,
        *args,
        timeout=timeout,
        ansible_playbook=ansible_playbook,
        ANSIBLE_CONFIG=config,
        **env,
    )
    return done, recorded(directory)


def run_local_tasks(
    directory: Path,
    tasks: list[dict[str, Any]],
    *args: str,
    python: str | Path = VENV_PYTHON,
    ignore_errors: bool = False,
    ansible_playbook: Path | str = VENV_BIN / "ansible-playbook",
    **env: str,
) -> tuple[PlaybookRun, list[dict[str, Any]]]:
    """Run the tasks on localhost with ``python`` from ``directory`` (see run_play), each registered, their
    failures ignored with ``ignore_errors``; the run must pass. Returns the run and every task's result, in
    the tasks' order."""
    names = [f"r{i}" for i in range(len(tasks))]
    also = {"ignore_errors": True} if ignore_errors else {}
    registered = [{**task, "register": name, **also} for task, name in zip(tasks, names, strict=True)]
    run, saved = run_play(
        directory,
        [*registered, record(directory, "results", "[" + ", ".join(names) + "]")],
        "-c",
        "local",
        "-e",
        f"ansible_python_interpreter={python}",
        *args,
        inventory="localhost,",
        timeout=120,
        ansible_playbook=ansible_playbook,
        **env,
    )
    assert run.rc == 0, run.stdout + run.stderr
    results: list[dict[str, Any]] = saved["results"]
    return run, results


def run_tasks(
    tmp_path: Path,
    tasks: list[dict[str, Any]],
    *,
    check: bool = False,
    diff: bool = False,
    python: str | Path = VENV_PYTHON,
) -> dict[str, Any]:
    """Run the tasks on localhost with ``python``, each registered as r0, r1, ...; the run must pass.
    Returns those results by name, in the tasks' order."""
    flags = [flag for flag, wanted in (("--check", check), ("--diff", diff)) if wanted]
    _run, results = run_local_tasks(
        tmp_path,
        tasks,
        *flags,
        python=python,
        ANSIBLE_LOCAL_TEMP=str(tmp_path / ".ansible-local"),
        ANSIBLE_REMOTE_TEMP=str(tmp_path / ".ansible-remote"),
    )
    return {f"r{i}": result for i, result in enumerate(results)}


@functools.cache
def target_python(version: str) -> str | None:
    """A ``python<version>`` (e.g. "3.7") that runs, on PATH or pyenv's (whose shims on PATH answer only for
    the versions pyenv has selected), if this machine has one."""
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    name = f"python{version}"
    candidates = [shutil.which(name), *map(str, sorted(pyenv.glob(f"versions/{version}.*/bin/{name}")))]
    for candidate in filter(None, candidates):
        if subprocess.run([candidate, "-c", ""], capture_output=True, check=False).returncode == 0:
            return candidate
    return None


def oldest_python() -> str | None:
    """The oldest Python a managed host may have for ansible-core 2.19's modules (3.8), if this machine
    has it. The oldest supported ansible-core, 2.17 (CORE_2_17_BIN), still runs modules on 3.7."""
    return target_python("3.8")


CORE_2_17_BIN = ROOT / ".venv-core-2.17" / "bin"  # made by `make setup`


class QuietHandler(BaseHTTPRequestHandler):
    """A base for test servers' handlers: ``answer`` sends a status and a body; nothing is logged."""

    def answer(self, status: int, body: str) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


class QuietFiles(SimpleHTTPRequestHandler):
    """Serves a directory's files (``functools.partial(QuietFiles, directory=...)``), logging nothing."""

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@contextmanager
def serve_http(app: type[BaseHTTPRequestHandler] | Path, tls: ssl.SSLContext | None = None) -> Iterator[str]:
    """Serve ``app`` (a handler class, or a directory's files) on a free port of 127.0.0.1 from a thread,
    over TLS with ``tls``; yields the base URL (``http://127.0.0.1:PORT``) and stops the server after."""
    handler = functools.partial(QuietFiles, directory=str(app)) if isinstance(app, Path) else app
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    if tls is not None:
        httpd.socket = tls.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def closed_port() -> int:
    """A port of 127.0.0.1 that nothing listens on (bound for a moment, then let go)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def descendants(pid: int) -> list[int]:
    """The processes below ``pid`` (from /proc), children first. ansible-playbook's workers run each in a
    session of its own (ansible-core's setsid), so killing the playbook's process group misses them."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
    found, frontier = [], [pid]
    while frontier:
        children = [child for child, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found
