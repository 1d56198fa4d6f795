"""Action plugins run their module's code in the controller only where that is the same as the module."""

from __future__ import annotations

import json
import typing as t
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.fleet import Lab
from tests.support import VENV_BIN, QuietHandler, record, recorded, run_on_localhost, serve_http, write_play

SYSTEM_PYTHON = "/usr/bin/python3"


class Healthy(QuietHandler):
    def do_GET(self) -> None:
        self.answer(200, "ok")


@pytest.fixture
def health_url() -> Iterator[str]:
    with serve_http(Healthy) as url:
        yield f"{url}/"


def health_check_play(tmp_path: Path, url: str, become: bool = False) -> Path:
    probe = {"url": url, "interval": 0.05, "deadline": 5}
    task = {"name": "Probe", "fleet.rollout.health_check": probe, "become": become}
    return write_play(tmp_path / "play.yml", [task])


@pytest.mark.parametrize(
    ("interpreter", "in_process"),
    [(str(VENV_BIN / "python"), True), ("auto_silent", True), (SYSTEM_PYTHON, False)],
)
def test_health_check_runs_in_the_controller_only_with_the_same_python(
    tmp_path: Path, health_url: str, interpreter: str, in_process: bool
) -> None:
    if not in_process and not Path(SYSTEM_PYTHON).exists():
        pytest.skip(f"{SYSTEM_PYTHON} is not on this machine")
    run = run_on_localhost(health_check_play(tmp_path, health_url), "-vvv", python=interpreter)
    assert run.rc == 0, run.stdout[-3000:]
    assert run.recap("localhost")["ok"] == 1
    shipped_a_module = "AnsiballZ_health_check.py" in run.stdout
    assert shipped_a_module is not in_process


def test_become_keeps_the_module_on_the_target(tmp_path: Path, health_url: str) -> None:
    run = run_on_localhost(
        health_check_play(tmp_path, health_url, become=True), "-vvv", python=VENV_BIN / "python"
    )
    assert run.rc == 0, run.stdout[-3000:]
    assert "AnsiballZ_health_check.py" in run.stdout


class ProxyRecorder(QuietHandler):
    """An HTTP proxy that answers every request itself and remembers the URLs it was asked for."""

    asked: t.ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.asked.append(self.path)  # a proxy is asked for the absolute URL
        self.answer(200, "via the proxy")


@pytest.mark.parametrize(
    ("where", "environment", "via_proxy"),
    [("task", "proxy", True), ("play", "proxy", True), ("task", "empty", False)],
)
def test_the_task_environment_reaches_the_module(
    tmp_path: Path, health_url: str, where: str, environment: str, via_proxy: bool
) -> None:
    """A task's `environment` (its own or inherited from the play) is a module's process environment,
    e.g. the proxy open_url uses; the in-process path has none, so such a task runs as a module."""
    ProxyRecorder.asked.clear()
    with serve_http(ProxyRecorder) as proxy:
        env = {"http_proxy": proxy} if environment == "proxy" else {}
        probe = {"name": "Probe", "fleet.rollout.health_check": {"url": health_url, "deadline": 5}}
        task = {**probe, "register": "probe", **({"environment": env} if where == "task" else {})}
        play = {
            "hosts": "localhost",
            "gather_facts": False,
            "tasks": [task, record(tmp_path, "probe", "probe")],
        }
        if where == "play":
            play["environment"] = env
        playbook = tmp_path / "play.yml"
        playbook.write_text(json.dumps([play]))
        run = run_on_localhost(
            playbook,
            "-vvv",
            python=VENV_BIN / "python",
            # No proxy settings of this machine's own: only the task's count.
            http_proxy="",
            HTTP_PROXY="",
            no_proxy="",
            NO_PROXY="",
        )
    assert run.rc == 0, run.stdout[-3000:]
    assert ProxyRecorder.asked == ([health_url] if via_proxy else [])
    assert recorded(tmp_path)["probe"]["excerpt"] == ("via the proxy" if via_proxy else "ok")
    assert ("AnsiballZ_health_check.py" in run.stdout) is via_proxy


@pytest.mark.lab(hosts=2)
@pytest.mark.parametrize(
    ("interpreter", "in_process"), [(str(VENV_BIN / "python"), True), (SYSTEM_PYTHON, False)]
)
def test_lb_member_info_reads_the_same_either_way(
    tmp_path: Path, lab: Lab, interpreter: str, in_process: bool
) -> None:
    if not in_process and not Path(SYSTEM_PYTHON).exists():
        pytest.skip(f"{SYSTEM_PYTHON} is not on this machine")
    tasks = [
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
    ]
    playbook = write_play(tmp_path / "info.yml", tasks)
    run = run_on_localhost(
        playbook,
        "-vvv",
        python=interpreter,
    )
    assert run.rc == 0, run.stdout[-3000:]
    assert ("AnsiballZ_lb_member_info.py" in run.stdout) is not in_process
