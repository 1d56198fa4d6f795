# Copyright: fleet.rollout developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""fleet.rollout.prometheus_analysis: runs on the controller only (its module file holds the docs)."""

from __future__ import annotations

import typing as t

from ansible.plugins.action import ActionBase
from ansible_collections.fleet.rollout.plugins.module_utils._errors import FleetRolloutError
from ansible_collections.fleet.rollout.plugins.plugin_utils import _prometheus
from ansible_collections.fleet.rollout.plugins.plugin_utils._condition import evaluate_condition


class ActionModule(ActionBase):
    """An instant query against Prometheus, polled over a bake, judged by a Jinja2 condition."""

    _requires_connection = False
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp: t.Any = None, task_vars: dict[str, t.Any] | None = None) -> dict[str, t.Any]:
        result: dict[str, t.Any] = super().run(tmp, task_vars)
        _validation, params = self.validate_argument_spec(argument_spec=_prometheus.ARGUMENT_SPEC)
        variables = dict(task_vars or {})

        def condition(samples: list[dict[str, t.Any]], value: float | None) -> bool:
            local = {"result": samples, "value": value}
            return evaluate_condition(self._templar, self._loader, params["condition"], local, variables)

        try:
            result.update(_prometheus.analyse(params, condition))
        except FleetRolloutError as exc:
            result.update(failed=True, msg=exc.message, **exc.details)
        return result
