"""Callback of bench/window_vs_serial.py: when each host's tasks started and ended, per play.

Enabled by the bench (ANSIBLE_CALLBACK_PLUGINS=bench/window_vs_serial, ANSIBLE_CALLBACKS_ENABLED=window_busy)
and written as JSON lines to the file named by WINDOW_BUSY_LOG. Times are time.monotonic() in the
controller's main process, the clock the bench times ansible-playbook with (CLOCK_MONOTONIC is system-wide).
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: window_busy
type: aggregate
short_description: per host task start and end times, per play, as JSON lines (fleet.rollout bench)
description: Writes one JSON line per event to the file named by WINDOW_BUSY_LOG.
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "window_busy"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self._path = os.environ.get("WINDOW_BUSY_LOG", "")
        self._play = ""

    def _write(self, event: str, host: str = "", task: str = "") -> None:
        if not self._path:
            return
        line = {"t": time.monotonic(), "event": event, "play": self._play, "host": host, "task": task}
        with open(self._path, "a", encoding="utf-8") as out:
            out.write(json.dumps(line) + "\n")

    @staticmethod
    def _host_task(result: Any) -> tuple[str, str]:
        # ansible-core 2.19 has public host/task; older cores only the underscored names.
        host = getattr(result, "host", None) or result._host
        task = getattr(result, "task", None) or result._task
        return host.get_name(), task.get_name()

    def v2_playbook_on_play_start(self, play: Any) -> None:
        self._play = play.get_name()
        self._write("play_start")

    def v2_playbook_on_task_start(self, task: Any, is_conditional: bool) -> None:
        self._write("task_start", task=task.get_name())

    def v2_runner_on_start(self, host: Any, task: Any) -> None:
        self._write("start", host.get_name(), task.get_name())

    def v2_runner_on_ok(self, result: Any) -> None:
        self._write("ok", *self._host_task(result))

    def v2_runner_on_failed(self, result: Any, ignore_errors: bool = False) -> None:
        self._write("failed", *self._host_task(result))

    def v2_runner_on_skipped(self, result: Any) -> None:
        self._write("skipped", *self._host_task(result))

    def v2_runner_on_unreachable(self, result: Any) -> None:
        self._write("unreachable", *self._host_task(result))

    def v2_playbook_on_stats(self, stats: Any) -> None:
        self._write("stats")
