# Copyright (c) fleet.rollout developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Test-only callback: the controller's view of when each host's tasks were queued and answered.

Writes one JSON line per event to the file named by ``ROLLOUT_TIMELINE``. The strategy tests use it
to measure admission latency without the noise of module start-up on a busy machine, and the
controller's CPU time while hosts work.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: rollout_timeline
type: aggregate
short_description: JSON lines of task start and result times per host (fleet.rollout tests)
description: Used by tests/integration/test_strategy_rolling.py only.
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "rollout_timeline"
    CALLBACK_NEEDS_ENABLED = True

    play = ""

    def v2_playbook_on_play_start(self, play: Any) -> None:
        self.play = play.get_name()

    def _write(self, event: str, host: str, task: Any) -> None:
        record = {
            "t": time.time(),
            "cpu": time.process_time(),  # the controller's own CPU seconds (all its threads, no workers)
            "play": self.play,
            "event": event,
            "host": host,
            "task": task.get_name(),
        }
        with open(os.environ["ROLLOUT_TIMELINE"], "a", encoding="utf-8") as stream:
            stream.write(json.dumps(record) + "\n")

    def v2_runner_on_start(self, host: Any, task: Any) -> None:
        self._write("start", host.name, task)

    def v2_runner_on_ok(self, result: Any) -> None:
        self._write("ok", result._host.name, result._task)

    def v2_runner_on_failed(self, result: Any, ignore_errors: bool = False) -> None:
        self._write("failed", result._host.name, result._task)

    def v2_runner_on_skipped(self, result: Any) -> None:
        self._write("skipped", result._host.name, result._task)

    def v2_runner_on_unreachable(self, result: Any) -> None:
        self._write("unreachable", result._host.name, result._task)
