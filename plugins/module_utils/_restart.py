# Private to this collection: not a public API, may change without notice.
"""The command that restarts the service once a release is current, run without a shell."""

from __future__ import annotations

import dataclasses
import shlex
import typing as t

from ansible_collections.fleet.rollout.plugins.module_utils._errors import (
    CommandFailedError,
    InvalidInputError,
)
from ansible_collections.fleet.rollout.plugins.module_utils._task_interface import RunCommand


@dataclasses.dataclass(frozen=True)
class Restart:
    """The command that restarts the service once ``current`` moved (``always``: even when it did not)."""

    argv: tuple[str, ...]
    always: bool = False

    @classmethod
    def parse(cls, command: t.Any, always: bool = False) -> Restart | None:
        """A command line (split like a shell would, but run without one) or an argv list; None for none."""
        if command is None:
            return None
        if isinstance(command, str):
            try:
                argv = shlex.split(command)
            except ValueError as exc:
                raise InvalidInputError(f"restart_command {command!r} cannot be split: {exc}") from exc
        elif isinstance(command, list) and all(isinstance(arg, str) for arg in command):
            argv = list(command)
        else:
            raise InvalidInputError(f"restart_command must be a string or a list of strings, got {command!r}")
        if not argv or not argv[0]:
            raise InvalidInputError(f"restart_command must name a program, got {command!r}")
        return cls(tuple(argv), always)


def restart_after_switch(
    restart: t.Optional[Restart],
    switched: bool,
    result: dict[str, t.Any],
    check_mode: bool,
    run_command: t.Optional[RunCommand],
) -> None:
    """Run the restart command once ``current`` is in place; its failure fails the task, current stays."""
    result["restarted"] = False
    if restart is None or not (switched or restart.always):
        return
    result["restarted"] = result["changed"] = True
    if check_mode:
        return
    if run_command is None:
        raise InvalidInputError("a restart command was given but nothing can run it here")
    rc, out, err = run_command(list(restart.argv))
    result["restart"] = {"cmd": list(restart.argv), "rc": rc, "stdout": out, "stderr": err}
    if rc != 0:
        raise CommandFailedError(
            f"the restart command {' '.join(restart.argv)!r} exited {rc} with {result['current']} "
            f"current: {(err or out).strip()[-300:]}",
            changed=True,  # current moved (or was restarted): a rescue must know to switch back
            current=result["current"],
            **result["restart"],
        )
