"""The modules run on the oldest Python a managed host may have: 3.7, with ansible-core 2.17.

`tools/sanity.sh` proves that every module imports on each target Python; this runs the modules' code
there, as real modules (the interpreter is not the controller's, so no action plugin runs it in-process).
"""

from __future__ import annotations

import re
import typing as t
from pathlib import Path

import pytest

from lab.fleet import Lab
from tests.support import CORE_2_17_BIN, make_tar, run_local_tasks, target_python


def why_failed(result: dict[str, t.Any]) -> str:
    """A module that crashed says so in ``msg``; the last line of its traceback says why."""
    traceback = str(result.get("module_stderr", "")).strip().splitlines()
    return traceback[-1] if traceback else str(result.get("msg"))


@pytest.mark.lab(hosts=2)
def test_modules_run_on_python_3_7_with_ansible_core_2_17(tmp_path: Path, lab: Lab) -> None:
    python = target_python("3.7")
    if python is None:
        pytest.fail("no python3.7 here (pyenv install 3.7): ansible-core 2.17 supports 3.7 targets")
    if not (CORE_2_17_BIN / "ansible-playbook").exists():
        pytest.fail(f"no {CORE_2_17_BIN.parent.name}: run `make setup`")
    balancer = lab.balancers[0]
    artifact = make_tar(tmp_path / "app-1.0.0.tar.gz", {"VERSION": "1.0.0", "app.py": "print()\n"})
    build = tmp_path / "build"  # a directory source is copied (the copytree of older Pythons), not unpacked
    (build / "lib").mkdir(parents=True)
    (build / "lib" / "app.py").write_text("print()\n")
    (build / "app.py").symlink_to("lib/app.py")
    root = tmp_path / "srv" / "app"
    tasks: list[dict[str, t.Any]] = [
        {"fleet.rollout.lb_member_info": {"socket": [str(balancer.socket)]}},
        {"fleet.rollout.health_check": {"url": balancer.frontend_url, "interval": 0.1, "deadline": 20}},
        {"fleet.rollout.health_check": {"tcp": f"127.0.0.1:{balancer.frontend_port}"}},
        {
            "fleet.rollout.release": {
                "root": str(root),
                "version": "1.0.0",
                "state": "staged",
                "src": str(artifact),
            }
        },
        {"fleet.rollout.release": {"root": str(root), "version": "1.1.0", "src": str(build)}},
    ]

    run, results = run_local_tasks(
        tmp_path / "play",
        tasks,
        "-vvv",
        python=python,
        ignore_errors=True,  # to see every task that fails
        ansible_playbook=CORE_2_17_BIN / "ansible-playbook",
        ANSIBLE_LOCAL_TEMP=str(tmp_path / ".ansible-local"),
        ANSIBLE_REMOTE_TEMP=str(tmp_path / ".ansible-remote"),
    )

    failed = [
        f"{next(iter(task))}: {why_failed(result)}"
        for task, result in zip(tasks, results, strict=True)
        if result["failed"]
    ]
    assert not failed, f"on {python}:\n" + "\n".join(failed)
    for module in ("lb_member_info", "health_check", "release"):
        ran = rf"{re.escape(python)} \S*AnsiballZ_{module}\.py"
        assert re.search(ran, run.stdout), f"{module} did not run as a module on {python}"
    info, http, tcp, staged, copied = results
    assert [s["server"] for s in info["servers"]] == ["app01", "app02"]
    assert {s["status"] for s in info["servers"]} == {"UP"}
    assert (http["status"], tcp["failed"]) == (200, False)
    assert (staged["changed"], staged["current"]) == (True, None)
    assert [r["version"] for r in staged["releases"]] == ["1.0.0"]
    assert (copied["changed"], copied["current"]) == (True, "1.1.0")
    assert (root / "releases" / "1.0.0" / "VERSION").read_text() == "1.0.0"
    assert (root / "releases" / "1.1.0" / "app.py").readlink() == Path("lib/app.py")
