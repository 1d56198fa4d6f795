# Private to this collection: not a public API, may change without notice.
"""A task option that is a Jinja2 expression, judged as Ansible judges ``when``, on every supported core.

ansible-core 2.19 and later evaluate it with the templar's own evaluate_conditional (a trusted
expression, a boolean result); 2.17 and 2.18 with ansible.playbook.conditional.Conditional, as their
``assert`` does. Never Python's eval: the expression sees only the variables it is given.
"""

from __future__ import annotations

import typing as t

from ansible.errors import AnsibleError
from ansible_collections.fleet.rollout.plugins.module_utils._errors import InvalidInputError


def evaluate_condition(
    templar: t.Any,
    loader: t.Any,
    condition: str,
    local_variables: t.Mapping[str, t.Any],
    task_vars: t.Mapping[str, t.Any],
) -> bool:
    """Whether ``condition`` holds, with ``local_variables`` over the task's variables; InvalidInputError
    (naming the condition and the local variables' values) when it cannot be evaluated."""
    variables = {**task_vars, **local_variables}
    try:
        if hasattr(templar, "evaluate_conditional"):  # ansible-core 2.19 and later
            return bool(
                templar.copy_with_new_env(available_variables=variables).evaluate_conditional(condition)
            )
        from ansible.playbook.conditional import Conditional  # noqa: PLC0415 - ansible-core 2.17, 2.18

        conditional = Conditional(loader=loader)
        conditional.when = [condition]
        return bool(conditional.evaluate_conditional(templar.copy_with_new_env(), variables))
    except AnsibleError as exc:
        given = ", ".join(f"{name}={shorten(repr(value))}" for name, value in local_variables.items())
        raise InvalidInputError(
            f"condition {condition!r} could not be evaluated with {given}: {exc.message}",
            condition=condition,
        ) from exc


def shorten(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
