"""fleet.rollout.health_check through real ansible-playbook runs against a real HTTP server on 127.0.0.1, and
against the lab's app as a process of its own for failing fast."""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import ssl
import subprocess
import time
import typing as t
import urllib.parse
from pathlib import Path

import pytest

from lab.release import APP_SOURCE, ReleaseBehaviour, release_manifest
from tests.support import VENV_PYTHON, QuietHandler, closed_port, oldest_python, run_tasks, serve_http

SYSTEM_PYTHON = Path("/usr/bin/python3")
OLDEST_PYTHON = oldest_python()


class App(QuietHandler):
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


@pytest.fixture
def app() -> t.Iterator[str]:
    with serve_http(App) as url:
        yield url.removeprefix("http://")


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
    results = run_tasks(tmp_path, probe_tasks(app, key, refused), check=check_mode)
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
    results = run_tasks(
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
    with serve_http(App, tls=context) as url:
        yield f"{url}/health", cert


def test_https_validates_against_ca_path(tmp_path: Path, tls_app: tuple[str, Path]) -> None:
    url, cert = tls_app
    results = run_tasks(
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
    results = run_tasks(
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


@contextlib.contextmanager
def lab_app(directory: Path, **behaviour: t.Any) -> t.Iterator[str]:
    """The lab's sample app as its own process on 127.0.0.1, releasing ``behaviour`` (see ReleaseBehaviour);
    yields its /health URL once it listens, which is when its warm-up began."""
    directory.mkdir(parents=True)
    shutil.copy(APP_SOURCE, directory / "app.py")
    manifest = release_manifest("v2", ReleaseBehaviour(**behaviour))
    (directory / "release.json").write_text(json.dumps(manifest))
    port = closed_port()
    command = [str(VENV_PYTHON), str(directory / "app.py"), "--name", "app01", "--address", "127.0.0.1"]
    process = subprocess.Popen([*command, "--port", str(port)], stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            assert process.poll() is None, f"the app exited with {process.returncode}"
            time.sleep(0.05)
        else:
            raise AssertionError(f"the app does not listen on 127.0.0.1:{port}")
        yield f"http://127.0.0.1:{port}/health"
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_a_release_whose_health_answers_500_fails_fast(tmp_path: Path) -> None:
    with lab_app(tmp_path / "app", health_fail=True) as url:
        started = time.monotonic()
        results = run_tasks(
            tmp_path / "play",
            [{"fleet.rollout.health_check": {"url": url, "interval": 0.1}, "ignore_errors": True}],
        )
        wall = time.monotonic() - started
    result = results["r0"]
    assert result["failed"] is True and result["failed_fast"] is True
    # The defaults (failure_threshold 3, deadline 60) at the deploy role's interval: three 500s, 0.2 s apart.
    assert result["elapsed"] < 3, result
    assert result["attempts"] == 3
    assert wall < 30, f"the playbook took {wall:.1f}s: it waited for the 60s deadline"
    assert result["msg"].startswith(
        f"health check of {url} failed 3 checks in a row (status 500, expected 200) after it had answered; "
        "failing fast instead of waiting for the 60s deadline"
    ), result["msg"]
    assert '"status": "failing"' in result["msg"]
    assert [(o["status"], o["definitive"]) for o in result["observations"]] == [(500, True)] * 3


def test_failure_threshold_0_waits_for_the_deadline(tmp_path: Path) -> None:
    with lab_app(tmp_path / "app", health_fail=True) as url:
        check = {"url": url, "interval": 0.1, "failure_threshold": 0, "deadline": 1.5}
        results = run_tasks(tmp_path / "play", [{"fleet.rollout.health_check": check, "ignore_errors": True}])
    result = results["r0"]
    assert result["failed"] is True and result["failed_fast"] is False
    assert result["msg"].startswith(f"health check of {url} failed: not healthy within 1.5s"), result["msg"]
    assert result["elapsed"] >= 1.3
    assert result["attempts"] > 3
    assert "status 500" in result["msg"]


def test_a_warm_up_of_503s_is_waited_for(tmp_path: Path) -> None:
    # Long enough that the check still sees the warm-up after ansible-playbook's own start.
    with lab_app(tmp_path / "app", warmup=6.0) as url:
        check = {"url": url, "interval": 0.1, "failure_threshold": 3}
        results = run_tasks(tmp_path / "play", [{"fleet.rollout.health_check": check}])
    result = results["r0"]
    assert (result["failed"], result["status"]) == (False, 200)
    warming = [o for o in result["observations"] if o["status"] == 503]
    assert len(warming) >= 3, result["observations"]  # at least failure_threshold of them, none counted
    assert not any(o["definitive"] for o in result["observations"])
    assert result["attempts"] > 3
