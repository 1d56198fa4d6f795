# Private to this collection: not a public API, may change without notice.
"""The parts of a task and its result as callbacks receive them, on every supported ansible-core, and what
the journal reads from them."""

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


def task_chain(task: Task) -> list[str]:
    """The paths (``file:line``) of the task and of every parent, innermost first: the blocks of the task
    files it was imported or included from, and the import/include tasks that brought them in."""
    chain: list[str] = []
    node: Any = task
    while node is not None:
        get_path = getattr(node, "get_path", None)
        if callable(get_path):
            path = get_path()
            if path:
                chain.append(str(path))
        node = getattr(node, "_parent", None)
    return chain


def checks_settings_only(task: Task) -> bool:
    """The argument validation ansible-core adds to the deploy role's ``settings`` and ``stage`` entry
    points, which the deploy playbook runs for every target before the first host is touched."""
    args = getattr(task, "args", None) or {}
    context = args.get("validate_args_context") if isinstance(args, Mapping) else None
    return isinstance(context, Mapping) and context.get("argument_spec_name") in ("settings", "stage")


def task_key(task: Task) -> str:
    """The task's id, the same in the start and the result events."""
    return str(getattr(task, "_uuid", "") or task.get_name())


def failure_message(result: Mapping[str, Any]) -> Any:
    """What the failure said: ``msg``, else ``stderr``, else the messages of the failed loop items."""
    for key in ("msg", "reason", "stderr"):
        if result.get(key):
            return result[key]
    items = result.get("results")
    if isinstance(items, list):
        messages = [str(i.get("msg")) for i in items if isinstance(i, Mapping) and i.get("failed")]
        return "; ".join(m for m in messages if m and m != "None") or None
    return None


def redrain_events(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The times an lb_member result (or each item of a loop of them) says its server was found back in
    rotation while drained and drained again: by the watcher of an earlier drain (``held``), then by
    this drain while it waited for the sessions to end (``drain_reasserted`` of a member)."""
    results = data.get("results")
    items = [i for i in (results if isinstance(results, list) else [data]) if isinstance(i, Mapping)]
    events = [dict(e, during="hold") for i in items for e in i.get("held") or [] if isinstance(e, Mapping)]
    for item in items:
        for member in item.get("members") or []:
            times = member.get("drain_reasserted") if isinstance(member, Mapping) else None
            if isinstance(times, int) and times > 0:
                where = {key: member.get(key) for key in ("balancer", "backend")}
                events.append({"during": "drain", "times": times, **where})
    return events
