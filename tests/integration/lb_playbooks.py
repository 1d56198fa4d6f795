"""Playbooks for the lb_member tests: each module call is registered and written to a JSON file."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lab.fleet import Lab
from lab.sampling import Sampler
from tests.support import PlaybookRun, record, run_play


def servers_state(lab: Lab, balancer: str = "lb1") -> dict[str, tuple[str, ...]]:
    """`show servers state app` per server, without the column that counts seconds."""
    lines = lab.runtime(balancer, "show servers state app").splitlines()
    columns = lines[1].lstrip("# ").split()
    rows = [dict(zip(columns, line.split(), strict=True)) for line in lines[2:] if line.strip()]
    keep = ("srv_op_state", "srv_admin_state", "srv_uweight", "srv_iweight")
    return {row["srv_name"]: tuple(row[k] for k in keep) for row in rows}


def stat(lab: Lab, server: str, balancer: str = "lb1") -> dict[str, str]:
    text = lab.runtime(balancer, "show stat app 4 -1")
    header, *rows = [line for line in text.splitlines() if line.strip()]
    columns = header.lstrip("# ").split(",")
    parsed = [dict(zip(columns, row.split(","), strict=False)) for row in rows]
    return next(row for row in parsed if row["svname"] == server)


def wait_for_status(lab: Lab, server: str, wanted: str, balancer: str = "lb1", deadline: float = 10) -> None:
    end = time.monotonic() + deadline
    while (status := stat(lab, server, balancer)["status"]) != wanted:
        assert time.monotonic() < end, f"{server} stayed {status}, wanted {wanted}"
        time.sleep(0.05)


class Watch(Sampler):
    """A thread that polls the balancer every 10 ms and notes the wall-clock time a condition first holds:
    an observer independent of the module, to compare its reported timings with."""

    def __init__(self, lab: Lab, condition: Callable[[Lab], bool]) -> None:
        super().__init__(0.01)
        self.lab = lab
        self.condition = condition
        self.seen_at: float | None = None

    def sample(self) -> None:
        if self.condition(self.lab):
            self.seen_at = time.time()
            self.stop()


class Playbook:
    """One play; ``call`` adds a module task whose result lands in ``results[name]`` (on localhost) or
    ``results["name@host"]`` (on the lab's hosts)."""

    def __init__(self, directory: Path, lab: Lab | None = None, hosts: str = "localhost") -> None:
        self.directory = directory
        self.lab = lab
        self.hosts = hosts
        self.tasks: list[dict[str, Any]] = []

    def call(self, name: str, module: str, **args: Any) -> Playbook:
        self.tasks += [
            {"name": name, module: args, "register": "result", "ignore_errors": True},
            record(self.directory, name, "result"),
        ]
        return self

    def stamp(self, name: str) -> Playbook:
        """Record the controller's wall clock at this point of the play."""
        self.tasks += [
            {"name": name, "ansible.builtin.set_fact": {"stamp": "{{ now().timestamp() }}"}},
            record(self.directory, name, "stamp"),
        ]
        return self

    def local_inventory(self) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        inventory = self.directory / "inventory.ini"
        inventory.write_text(
            f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}\n"
        )
        return inventory

    def run(self, *args: str) -> tuple[PlaybookRun, dict[str, Any]]:
        inventory = self.lab.inventory if self.lab else self.local_inventory()
        return run_play(self.directory, self.tasks, *args, inventory=inventory, hosts=self.hosts)


def timed_run(playbook: Playbook, *args: str) -> tuple[PlaybookRun, dict[str, Any], float]:
    started = time.monotonic()
    done, results = playbook.run(*args)
    return done, results, time.monotonic() - started
