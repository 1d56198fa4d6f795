"""Ansible callback for the benches: one JSON line per host and task, with wall-clock start and end.

Enabled by the bench scripts (ANSIBLE_CALLBACK_PLUGINS=bench/callback, ANSIBLE_CALLBACKS_ENABLED=task_times)
and written to the file named by BENCH_TASK_TIMES. Times are time.time() in the controller as Ansible's main
process sees the task start for a host and its result arrive, so they compare with the bench's own clock.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: task_times
type: aggregate
short_description: per host and task wall-clock start and end, as JSON lines (fleet.rollout benches)
description: Writes one JSON line per host and task to the file named by BENCH_TASK_TIMES.
"""

DROPPED = {"invocation", "stdout_lines", "stderr_lines", "_ansible_no_log", "_ansible_verbose_always"}


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "task_times"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self._path = os.environ.get("BENCH_TASK_TIMES", "")
        self._started: dict[tuple[str, str], float] = {}

    @staticmethod
    def _parts(result: Any) -> tuple[str, Any, dict[str, Any]]:
        # ansible-core 2.19 has public host/task/result; older cores only the underscored names.
        host = getattr(result, "host", None) or result._host
        task = getattr(result, "task", None) or result._task
        raw = getattr(result, "result", None)
        return host.get_name(), task, dict(raw if raw is not None else result._result)

    def v2_runner_on_start(self, host: Any, task: Any) -> None:
        self._started[(host.get_name(), task._uuid)] = time.time()

    def _record(self, result: Any, status: str) -> None:
        end = time.time()
        host, task, raw = self._parts(result)
        start = self._started.pop((host, task._uuid), end)
        if not self._path:
            return
        line = {
            "host": host,
            "task": task.get_name(),
            "action": task.action,
            "start": start,
            "end": end,
            "status": status,
            "result": {k: v for k, v in raw.items() if k not in DROPPED},
        }
        with open(self._path, "a", encoding="utf-8") as out:
            out.write(json.dumps(line, default=str) + "\n")

    def v2_runner_on_ok(self, result: Any) -> None:
        self._record(result, "ok")

    def v2_runner_on_failed(self, result: Any, ignore_errors: bool = False) -> None:
        self._record(result, "failed")

    def v2_runner_on_skipped(self, result: Any) -> None:
        self._record(result, "skipped")

    def v2_runner_on_unreachable(self, result: Any) -> None:
        self._record(result, "unreachable")
