# Private to this collection: not a public API, may change without notice.
"""An action plugin that runs its module's own code inside the controller when the target is local.

A module task costs the controller a module package, a transfer and a Python start (0.15-0.3 s of CPU);
a balancer socket or a health URL the controller can reach needs none of that. When the task's
connection is `local` (a `delegate_to: localhost`, or a host that is the controller), the module_utils
code the module would run is called in this process, with the same argument spec, the same check and
diff handling and the same results. The module still runs as a module where that would differ: on any
other connection, with `become`, when the task has an `environment` (proxy variables for open_url, a PATH
for a restart command: only a module's process gets them), or when the task names a Python interpreter
other than this one.
"""

from __future__ import annotations

import os
import subprocess
import sys
import typing as t

from ansible.plugins.action import ActionBase
from ansible_collections.fleet.rollout.plugins.module_utils._errors import FleetRolloutError
from ansible_collections.fleet.rollout.plugins.module_utils._task_interface import TaskInterface


class ControllerSideAction(ActionBase):
    """Subclasses name the module's task interface; its runner runs here when the target is local."""

    TASK: t.ClassVar[TaskInterface]
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp: t.Any = None, task_vars: dict[str, t.Any] | None = None) -> dict[str, t.Any]:
        result: dict[str, t.Any] = super().run(tmp, task_vars)
        task = self.TASK
        if not self._same_process_would_do(task_vars or {}):
            result.update(self._execute_module(module_name=task.module, task_vars=task_vars))
            return result
        _validation, params = self.validate_argument_spec(
            argument_spec=task.argument_spec, **task.constraints
        )
        try:
            result.update(task.run(params, bool(self._task.check_mode), bool(self._task.diff), run_locally))
        except FleetRolloutError as exc:
            result.update(failed=True, msg=exc.message, **exc.details)
        return result

    def _same_process_would_do(self, task_vars: dict[str, t.Any]) -> bool:
        if self._connection.transport != "local" or self._task.become or self._task_environment():
            return False
        interpreter = self._templar.template(task_vars.get("ansible_python_interpreter"))
        return interpreter is None or str(interpreter).startswith("auto") or is_this_python(str(interpreter))

    def _task_environment(self) -> dict[str, t.Any]:
        """The task's `environment` (with the play's and blocks' it inherits), templated: what ansible-core
        sets for a module, computed by ActionBase's own code (the same in ansible-core 2.17 to 2.21)."""
        environment: dict[str, t.Any] = {}
        self._compute_environment_string(environment)
        return environment


def is_this_python(interpreter: str) -> bool:
    """Same binary in the same bin directory (so the same virtualenv), e.g. python and python3.11."""
    here, there = os.path.abspath(sys.executable), os.path.abspath(interpreter)
    same_directory = os.path.dirname(here) == os.path.dirname(there)
    return same_directory and os.path.realpath(here) == os.path.realpath(there)


def run_locally(argv: list[str]) -> tuple[int, str, str]:
    """A command without a shell, as AnsibleModule.run_command would run it on the target."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, errors="replace", check=False)
    except OSError as exc:  # not found, not executable: what run_command reports as rc 2
        return 2, "", str(exc)
    return done.returncode, done.stdout, done.stderr
