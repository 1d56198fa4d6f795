# Private to this collection: not a public API, may change without notice.
"""What a module and its controller-side action plugin share: the argument spec, its constraints and the
runner, so that a task validates and behaves the same wherever it runs."""

from __future__ import annotations

import dataclasses
import typing as t

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.fleet.rollout.plugins.module_utils._module_exit import exit_module

# (params, check_mode, diff) -> result; a runner that runs commands also takes run_command=
Runner = t.Callable[..., t.Dict[str, t.Any]]
RunCommand = t.Callable[[t.List[str]], t.Tuple[int, str, str]]  # argv, no shell -> rc, stdout, stderr


@dataclasses.dataclass(frozen=True)
class TaskInterface:
    module: str  # fleet.rollout.<name>
    argument_spec: dict[str, dict[str, t.Any]]
    runner: Runner
    constraints: dict[str, t.Any] = dataclasses.field(default_factory=dict)
    runs_commands: bool = False  # the runner takes run_command= (a release's restart command)

    def run(
        self, params: dict[str, t.Any], check_mode: bool, diff: bool, run_command: RunCommand
    ) -> dict[str, t.Any]:
        extra = {"run_command": run_command} if self.runs_commands else {}
        return self.runner(params, check_mode, diff, **extra)

    def run_as_module(self, needs: t.Callable[[AnsibleModule], None] | None = None) -> None:
        """A module's whole main(): its arguments validated, ``needs`` checked (a missing library fails
        here), the task run and its result or typed error returned."""
        module = AnsibleModule(argument_spec=self.argument_spec, supports_check_mode=True, **self.constraints)
        if needs is not None:
            needs(module)
        exit_module(
            module, lambda: self.run(module.params, module.check_mode, module._diff, module.run_command)
        )
