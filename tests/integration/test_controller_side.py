"""Action plugins run their module's code in the controller only where that is the same as the module."""

from __future__ import annotations

import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread
from typing import Any

import pytest

from lab.fleet import Lab
from tests.support import VENV_BIN, run_playbook

SYSTEM_PYTHON = "/usr/bin/python3"


class Healthy(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@pytest.fixture
def health_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Healthy)
    thread = Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def health_check_play(tmp_path: Path, url: str, become: bool = False) -> Path:
    play = [
        {
            "hosts": "localhost",
            "gather_facts": False,
            "tasks": [
                {
                    "name": "Probe",
                    "fleet.rollout.health_check": {"url": url, "interval": 0.05, "deadline": 5},
                    "become": become,
                }
            ],
        }
    ]
    playbook = tmp_path / "play.yml"
    playbook.write_text(json.dumps(play))
    return playbook


@pytest.mark.parametrize(
    ("interpreter", "in_process"),
    [(str(VENV_BIN / "python"), True), ("auto_silent", True), (SYSTEM_PYTHON, False)],
)
def test_health_check_runs_in_the_controller_only_with_the_same_python(
    tmp_path: Path, health_url: str, interpreter: str, in_process: bool
) -> None:
    if not in_process and not Path(SYSTEM_PYTHON).exists():
        pytest.skip(f"{SYSTEM_PYTHON} is not on this machine")
    run = run_playbook(
        health_check_play(tmp_path, health_url),
        "localhost,",
        "-c",
        "local",
        "-vvv",
        "-e",
        f"ansible_python_interpreter={interpreter}",
    )
    assert run.rc == 0, run.stdout[-3000:]
    assert run.recap("localhost")["ok"] == 1
    shipped_a_module = "AnsiballZ_health_check.py" in run.stdout
    assert shipped_a_module is not in_process


def test_become_keeps_the_module_on_the_target(tmp_path: Path, health_url: str) -> None:
    run = run_playbook(
        health_check_play(tmp_path, health_url, become=True),
        "localhost,",
        "-c",
        "local",
        "-vvv",
        "-e",
        f"ansible_python_interpreter={VENV_BIN / 'python'}",
    )
    assert run.rc == 0, run.stdout[-3000:]
    assert "AnsiballZ_health_check.py" in run.stdout


@pytest.mark.lab(hosts=2)
@pytest.mark.parametrize(
    ("interpreter", "in_process"), [(str(VENV_BIN / "python"), True), (SYSTEM_PYTHON, False)]
)
def test_lb_member_info_reads_the_same_either_way(
    tmp_path: Path, lab: Lab, interpreter: str, in_process: bool
) -> None:
    if not in_process and not Path(SYSTEM_PYTHON).exists():
        pytest.skip(f"{SYSTEM_PYTHON} is not on this machine")
    play = [
        {
            "hosts": "localhost",
            "gather_facts": False,
            "tasks": [
                {
                    "name": "Read",
                    "fleet.rollout.lb_member_info": {"socket": [str(lab.balancers[0].socket)]},
                    "register": "info",
                },
                {
                    "name": "Check",
                    "ansible.builtin.assert": {
                        "that": ["info.servers | map(attribute='server') | list == ['app01', 'app02']"]
                    },
                },
            ],
        }
    ]
    playbook = tmp_path / "info.yml"
    playbook.write_text(json.dumps(play))
    run = run_playbook(
        playbook, "localhost,", "-c", "local", "-vvv", "-e", f"ansible_python_interpreter={interpreter}"
    )
    assert run.rc == 0, run.stdout[-3000:]
    assert ("AnsiballZ_lb_member_info.py" in run.stdout) is not in_process
