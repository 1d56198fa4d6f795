# Private to this collection: not a public API, may change without notice.
"""The parts of a task result as callbacks receive it, on every supported ansible-core."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ansible.inventory.host import Host
    from ansible.playbook.task import Task


def result_parts(result: Any) -> tuple[Host, Task, Mapping[str, Any]]:
    """Host, task and result dict of a task result: ``host``/``task``/``result`` on ansible-core 2.19 and
    later (``_host``/``_task``/``_result`` there are deprecated), only the underscored ones on 2.17."""
    if hasattr(result, "result"):
        return result.host, result.task, result.result
    return result._host, result._task, result._result
