"""fleet.rollout.health_check through real ansible-playbook runs against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
import typing as t
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"
SYSTEM_PYTHON = Path("/usr/bin/python3")


def find_oldest_python() -> str | None:
    """The oldest Python a managed host may have (ansible-core 2.19 modules: 3.8), if this machine has it."""
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates = [shutil.which("python3.8"), *map(str, sorted(pyenv.glob("versions/3.8*/bin/python3.8")))]
    for candidate in filter(None, candidates):
        if subprocess.run([candidate, "-c", ""], capture_output=True, check=False).returncode == 0:
            return candidate
    return None


OLDEST_PYTHON = find_oldest_python()


def run_playbook(
    tmp_path: Path, tasks: list[dict[str, t.Any]], check: bool = False, python: str | Path = VENV_PYTHON
) -> dict[str, t.Any]:
    """Run the tasks on localhost, each registered as r0, r1, ...; return those results by name."""
    out = tmp_path / f"results-{len(list(tmp_path.glob('results-*')))}.json"
    names = [f"r{i}" for i in range(len(tasks))]
    saved = "{{ {" + ", ".join(f"'{name}': {name}" for name in names) + "} | to_json }}"
    play = {
        "hosts": "localhost",
        "gather_facts": False,
        "tasks": [{**task, "register": name} for task, name in zip(tasks, names, strict=True)]
        + [{"ansible.builtin.copy": {"content": saved, "dest": str(out)}, "check_mode": False}],
    }
    playbook = tmp_path / "playbook.yml"
    playbook.write_text(json.dumps([play], indent=2))  # JSON is YAML
    command = [str(ROOT / ".venv" / "bin" / "ansible-playbook"), "-i", "localhost,", "-c", "local"]
    command += ["-e", f"ansible_python_interpreter={python}", str(playbook)] + (["--check"] if check else [])
    env = {
        **os.environ,
        "ANSIBLE_COLLECTIONS_PATH": str(ROOT / ".tmp" / "collections"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / ".ansible-local"),
        "ANSIBLE_REMOTE_TEMP": str(tmp_path / ".ansible-remote"),
    }
    done = subprocess.run(
        command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return t.cast(dict[str, t.Any], json.loads(out.read_text()))


class App(BaseHTTPRequestHandler):
    """/health is up, /down is in maintenance, /flaky?key=K fails twice per key, /slow answers too late."""

    hits: t.ClassVar[dict[str, int]] = {}

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        key = f"{url.path}?{url.query}"
        self.hits[key] = self.hits.get(key, 0) + 1
        if url.path == "/health":
            self.answer(200, json.dumps({"status": "ok", "checks": {"db": "up"}}))
        elif url.path == "/flaky":
            self.answer(503 if self.hits[key] <= 2 else 200, "warming up" if self.hits[key] <= 2 else "ok")
        elif url.path == "/slow":
            time.sleep(1)
            self.answer(200, "late")
        else:
            self.answer(503, "<h1>down for maintenance</h1>")

    def answer(self, status: int, body: str) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: t.Any) -> None:
        pass


def serve(context: ssl.SSLContext | None = None) -> tuple[ThreadingHTTPServer, threading.Thread]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), App)
    if context is not None:
        httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    return httpd, thread


@pytest.fixture
def app() -> t.Iterator[str]:
    httpd, thread = serve()
    try:
        yield f"127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def probe_tasks(app: str, key: str, refused: int) -> list[dict[str, t.Any]]:
    def check(**options: t.Any) -> dict[str, t.Any]:
        return {"fleet.rollout.health_check": {"interval": 0.05, **options}}

    def failing(**options: t.Any) -> dict[str, t.Any]:
        return {**check(**options), "ignore_errors": True}

    return [
        check(
            url=f"http://{app}/health", json_query="checks.db", json_expect="up", body_regex='"status": "ok"'
        ),
        check(url=f"http://{app}/flaky?key={key}", successes=2),
        check(tcp=app),
        failing(url=f"http://{app}/down", deadline=0.3),
        failing(url=f"http://{app}/slow", timeout=0.2, deadline=0.5),
        failing(tcp=f"127.0.0.1:{refused}", deadline=0.2),
        failing(url=f"http://{app}/health", stable_for=2, deadline=1),
    ]


@pytest.mark.parametrize("check_mode", [False, True], ids=["run", "check-mode"])
def test_probes_pass_and_fail_with_evidence(tmp_path: Path, app: str, check_mode: bool) -> None:
    key = "check" if check_mode else "run"
    refused = closed_port()
    results = run_playbook(tmp_path, probe_tasks(app, key, refused), check=check_mode)
    ok, flaky, tcp, down, slow, closed, invalid = (results[f"r{i}"] for i in range(7))

    # Never a change, in either mode; in check mode the probe really ran (it only reads).
    assert not any(result["changed"] for result in results.values())
    assert (ok["failed"], ok["attempts"], ok["status"]) == (False, 1, 200)
    assert '"db": "up"' in ok["excerpt"]
    assert flaky["attempts"] == 4  # two 503s, then two 200s in a row
    assert flaky["observations"][0]["error"] == "status 503 is not one of [200]"
    assert App.hits[f"/flaky?key={key}"] == 4
    assert (tcp["failed"], tcp["attempts"]) == (False, 1)

    assert down["failed"] and down["status"] == 503
    assert "status 503" in down["msg"] and "down for maintenance" in down["msg"]
    assert down["excerpt"] == "<h1>down for maintenance</h1>"
    assert down["attempts"] >= 2
    assert slow["failed"] and "timed out" in slow["msg"]
    assert closed["failed"] and f"TCP connect to 127.0.0.1:{refused} failed" in closed["msg"]
    assert "refused" in closed["msg"].lower()
    assert invalid["failed"] and "stable_for must be at least 0 and below deadline" in invalid["msg"]


@pytest.mark.skipif(
    not SYSTEM_PYTHON.exists()
    or subprocess.run(
        [str(SYSTEM_PYTHON), "-c", "import jmespath"], capture_output=True, check=False
    ).returncode
    == 0,
    reason="needs a Python without jmespath",
)
def test_json_query_without_jmespath_names_the_library(tmp_path: Path, app: str) -> None:
    results = run_playbook(
        tmp_path,
        [
            {"fleet.rollout.health_check": {"url": f"http://{app}/health", "body_regex": "ok"}},
            {
                "fleet.rollout.health_check": {
                    "url": f"http://{app}/health",
                    "json_query": "a",
                    "json_expect": 1,
                },
                "ignore_errors": True,
            },
        ],
        python=SYSTEM_PYTHON,
    )
    assert results["r0"]["failed"] is False  # only json_query needs jmespath
    assert results["r1"]["failed"] is True
    assert "Failed to import the required Python library (jmespath)" in results["r1"]["msg"]


@pytest.fixture
def tls_app(tmp_path: Path) -> t.Iterator[tuple[str, Path]]:
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    self_signed = ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"]
    command = ["openssl", *self_signed, "-addext", "subjectAltName=IP:127.0.0.1"]
    command += ["-keyout", str(key), "-out", str(cert)]
    subprocess.run(command, check=True, capture_output=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    httpd, thread = serve(context)
    try:
        yield f"https://127.0.0.1:{httpd.server_address[1]}/health", cert
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def test_https_validates_against_ca_path(tmp_path: Path, tls_app: tuple[str, Path]) -> None:
    url, cert = tls_app
    results = run_playbook(
        tmp_path,
        [
            {"fleet.rollout.health_check": {"url": url, "ca_path": str(cert)}},
            {"fleet.rollout.health_check": {"url": url, "validate_certs": False}},
            {
                "fleet.rollout.health_check": {"url": url, "deadline": 0.3, "interval": 0.1},
                "ignore_errors": True,
            },
        ],
    )
    assert results["r0"]["status"] == 200
    assert results["r1"]["status"] == 200
    assert results["r2"]["failed"] is True
    assert "certificate" in results["r2"]["msg"].lower()


@pytest.mark.skipif(OLDEST_PYTHON is None, reason="python3.8 is not installed here")
def test_runs_on_the_oldest_managed_host_python(tmp_path: Path, app: str) -> None:
    results = run_playbook(
        tmp_path,
        [
            {"fleet.rollout.health_check": {"url": f"http://{app}/flaky?key=py38", "interval": 0.05}},
            {"fleet.rollout.health_check": {"tcp": app}},
            {
                "fleet.rollout.health_check": {"url": f"http://{app}/down", "deadline": 0.2},
                "ignore_errors": True,
            },
        ],
        python=str(OLDEST_PYTHON),
    )
    assert results["r0"]["attempts"] == 3
    assert results["r1"]["failed"] is False
    assert "down for maintenance" in results["r2"]["msg"]
