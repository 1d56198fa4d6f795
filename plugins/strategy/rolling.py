# Copyright (c) fleet.rollout developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
# ruff: noqa: E402 (ansible-test's validate-modules wants DOCUMENTATION above every import)

from __future__ import annotations

DOCUMENTATION = r"""
name: rolling
short_description: Rolling window over all hosts, with a canary wave and a failure budget
version_added: 1.0.0
author: fleet.rollout developers (!UNKNOWN)
description:
  - Runs the whole task list of a play on at most C(rollout_window) hosts at a time. The moment one
    host finishes its task list (handlers included), the next host in the play's C(order) starts,
    instead of every C(serial) batch waiting for its slowest host. Hosts waiting for their turn hold
    no worker and run nothing.
  - The first C(rollout_canary) hosts run alone as a canary wave. The window opens only when every
    canary host finished successfully, after C(rollout_canary_pause) seconds.
  - Once more than C(rollout_max_failures) hosts have failed (unreachable counts as failed), no new
    host starts. While a host in flight runs a C(rescue) section, no new host starts either, until
    it is known whether that host failed. Hosts in flight finish (their rescue and always sections
    run); hosts that never started are left untouched. The play then fails with a summary naming
    the failed hosts, and the later plays of the playbook still run, even when every host of the
    play failed.
  - After the play the inventory groups C(rollout_ok), C(rollout_failed) and C(rollout_untouched)
    hold the outcome of the play's target hosts (hosts that failed in an earlier play are in none).
  - The options are play variables (C(vars), C(vars_files), C(-e)), templated. C(rollout_window),
    C(rollout_canary) and C(rollout_max_failures) are a count of hosts or a percentage of the
    play's target hosts such as C(25%) (rounded down as C(serial) does); defaults 1, 1 and 0.
    C(rollout_canary=0) turns the canary wave off. C(rollout_canary_pause) is seconds, default 0.
    C(rollout_window) may also be a list, as C(serial) takes one (C([1, 3, "25%"]); C(-e
    rollout_window=[1,3]) is read as the list it spells). The canary wave runs first (in the window of
    the first item) and counts toward no step. Then step i takes the next hosts, as many as item i,
    at most that many at once, and starts only when every host of the steps before it finished; the
    last item is a window sliding over all the hosts left. The budget spans every step.
    A play that must never have a canary wave (a revert) sets C(rollout_canary_wave=false), which
    C(-e rollout_canary=N) does not override.
    Bad values fail the play before any host starts.
  - The play must not use C(serial). Within a host, tasks run as with the C(free) strategy, which
    this strategy extends; C(run_once), C(any_errors_fatal) and C(max_fail_percentage) behave as
    there. A window wider than C(forks) is narrowed to C(forks), with a warning; a step wider than
    C(forks) runs its hosts C(forks) at a time and still waits for all of them.
  - ansible-core 2.19 and later print a deprecation warning for every strategy plugin outside
    ansible.builtin; see the collection's docs/strategy.md. Before the first host starts, the strategy
    checks that this ansible-core has the private internals it reads, and otherwise fails the play
    naming them (C(-e rollout_strategy=linear) then runs the collection's playbooks in serial batches).
"""

import threading
import time
from typing import TYPE_CHECKING

from ansible import constants as C
from ansible.errors import AnsibleError
from ansible.template import Templar
from ansible.utils.display import Display
from ansible_collections.fleet.rollout.plugins.plugin_utils import _core_access as core
from ansible_collections.fleet.rollout.plugins.plugin_utils._outcome import decide
from ansible_collections.fleet.rollout.plugins.plugin_utils._rolling_options import (
    DEFAULTS,
    RolloutLimits,
    RolloutOptionError,
    RolloutOptions,
    parse_options,
    serial_is_set,
)

if TYPE_CHECKING:
    from ansible.executor.play_iterator import PlayIterator
    from ansible.executor.task_queue_manager import TaskQueueManager
    from ansible.inventory.host import Host
    from ansible.playbook.play import Play
    from ansible.playbook.play_context import PlayContext

display = Display()

GROUP_OK = "rollout_ok"
GROUP_FAILED = "rollout_failed"
GROUP_UNTOUCHED = "rollout_untouched"
# Longest idle wait for a result. A result ends the wait at once; the bound only keeps the loop
# checking for termination and for anything that changes without a result.
IDLE_WAIT_S = 0.25


class _Rollout:
    """Admission bookkeeping of one play. Hosts move from ``waiting`` to ``in_flight`` to done."""

    def __init__(self, targets: list[Host], limits: RolloutLimits, skipped: list[str]) -> None:
        self.limits = limits
        self.total = len(targets)
        self.waiting = list(targets)
        self.admitted: list[Host] = []  # what free iterates over: it keeps an index, so it only grows
        self.in_flight: list[Host] = []
        self.failed_done: list[str] = []
        self.not_started: list[str] = []  # ended by end_batch/end_play before their turn
        self.skipped = skipped  # failed or unreachable in an earlier play: not part of this rollout
        self.canary_pending = limits.canary > 0
        self.step = 0  # the step (see RolloutLimits) of the hosts admitted last; 0 is the canary wave
        self.halt_reason = ""


class StrategyModule(core.FreeStrategy):
    """``free`` restricted to the admitted hosts; admission happens in ``get_hosts_left``."""

    def __init__(self, tqm: TaskQueueManager) -> None:
        super().__init__(tqm)
        self._rollout: _Rollout | None = None
        self._result_arrived = threading.Event()

    def run(self, iterator: PlayIterator, play_context: PlayContext) -> int:
        # before any host starts: a rename in a new ansible-core fails here, not mid-rollout
        core.check_core_internals(self, iterator)
        core.install_result_signal(self, self._result_arrived)  # no task is queued yet
        rollout = self._rollout = self._plan(iterator)
        result: int = super().run(iterator, play_context)
        failed = [host.name for host in rollout.admitted if core.failed_or_unreachable(self, iterator, host)]
        ok = [host.name for host in rollout.admitted if host.name not in failed]
        untouched = rollout.not_started + [host.name for host in rollout.waiting]
        self._publish_groups({GROUP_OK: ok, GROUP_FAILED: failed, GROUP_UNTOUCHED: untouched})
        self._report(rollout, ok, failed, untouched)
        if failed:
            # PlaybookExecutor stops the whole playbook when every host of a play failed. An ended
            # play skips that check, so the later plays (revert, finish) still run; the failed hosts
            # stay failed in them, which keeps ansible-playbook's exit code non-zero.
            core.end_play(iterator)
        return result

    def get_hosts_left(self, iterator: PlayIterator) -> list[Host]:
        """Called by free at the top of every pass: retire finished hosts, then fill free slots."""
        rollout = self._rollout
        if rollout is None:
            return list(super().get_hosts_left(iterator))
        while True:
            self._retire_finished(rollout, iterator)
            if not self._admit_next(rollout, iterator):
                return list(rollout.admitted)

    def collect_results(
        self, iterator: PlayIterator, one_pass: bool = False, max_passes: int | None = None
    ) -> list[object]:
        """Called by free once per pass, after it queued what it could. free then sleeps 1 ms and
        peeks at every admitted host again (several hundred passes a second, each resolving role
        paths, while the hosts' own work needs the CPU). When every host in flight is running a task,
        no pass can queue anything before a result arrives: wait for one here instead."""
        self._result_arrived.clear()  # before looking: a result appended from now on sets it again
        results: list[object] = super().collect_results(iterator, one_pass, max_passes)
        if results or not self._only_waiting():
            return results
        self._result_arrived.wait(IDLE_WAIT_S)
        results = super().collect_results(iterator, one_pass, max_passes)
        return results

    def _only_waiting(self) -> bool:
        """Whether a task is pending and every host in flight is running one. A host in flight that is
        not (held back by ``throttle``, say) keeps free's own polling."""
        rollout = self._rollout
        if rollout is None or core.pending_results(self) == 0:
            return False
        return all(core.is_blocked(self, host.name) for host in rollout.in_flight)

    def _plan(self, iterator: PlayIterator) -> _Rollout:
        play = core.play_of(iterator)
        if serial_is_set(play.serial):
            raise AnsibleError(
                "fleet.rollout.rolling: remove `serial` from the play; the strategy sees all hosts at once "
                "and rollout_window sets how many run at a time"
            )
        options = self._options(play)
        targets, skipped = [], []
        for host in self._inventory.get_hosts(play.hosts, order=play.order):
            if core.is_unreachable(self, host.name) or iterator.is_failed(host):
                skipped.append(host.name)
            else:
                targets.append(host)
        limits = options.resolve(len(targets))
        workers = max(1, core.worker_count(self))
        if not limits.steps and limits.window > workers:
            display.warning(
                f"fleet.rollout.rolling: rollout_window {limits.window} is wider than forks ({workers}); "
                f"narrowing it to {workers} (raise --forks to widen it)"
            )
        elif wide := [str(step) for step, window in enumerate(limits.windows(), 1) if window > workers]:
            steps = f"step{'s' * (len(wide) > 1)} {', '.join(wide)}"
            display.warning(
                f"fleet.rollout.rolling: rollout_window {limits.describe_window()} is wider than forks "
                f"({workers}) in {steps}: they run {workers} hosts at a time (raise --forks to widen them)"
            )
        limits = limits.narrowed(workers)
        display.v(
            f"fleet.rollout.rolling: {len(targets)} hosts, window {limits.describe_window()}, "
            f"canary {limits.canary}, at most {limits.max_failures} failures"
        )
        return _Rollout(targets, limits, skipped)

    def _options(self, play: Play) -> RolloutOptions:
        variables = self._variable_manager.get_vars(play=play)
        templar = Templar(loader=self._loader, variables=variables)
        values = {name: templar.template(variables[name]) for name in DEFAULTS if name in variables}
        try:
            return parse_options(values)
        except RolloutOptionError as error:
            raise AnsibleError(f"fleet.rollout.rolling: {error}") from error

    def _retire_finished(self, rollout: _Rollout, iterator: PlayIterator) -> None:
        """A host is done when it is not running a task and the iterator has none left for it:
        the same test free uses to decide that a host has no more work."""
        for host in list(rollout.in_flight):
            if core.is_blocked(self, host.name):
                continue
            if not core.is_unreachable(self, host.name) and core.has_task_left(iterator, host):
                continue
            rollout.in_flight.remove(host)
            if core.failed_or_unreachable(self, iterator, host):
                rollout.failed_done.append(host.name)
            display.vv(f"fleet.rollout.rolling: {host.name} finished ({len(rollout.in_flight)} in flight)")

    def _admit_next(self, rollout: _Rollout, iterator: PlayIterator) -> bool:
        """Start the next waiting host if the budget, the window and the canary allow; True if a
        host left the waiting list (so the caller looks again)."""
        if rollout.halt_reason or not rollout.waiting:
            return False
        rollout.halt_reason = self._halt_reason(rollout, iterator)
        if rollout.halt_reason:
            display.warning(
                f"fleet.rollout.rolling: rollout halted ({rollout.halt_reason}); hosts in flight finish, "
                f"{len(rollout.waiting)} hosts will not start"
            )
            return False
        if self._any_in_rescue(rollout, iterator):
            return False  # a host is failing right now: wait to see whether it counts
        if not self._window_has_room(rollout):
            return False
        host = rollout.waiting.pop(0)
        if core.is_complete(iterator, host):
            rollout.not_started.append(host.name)  # ended by end_batch before its turn
            return True
        rollout.admitted.append(host)
        rollout.in_flight.append(host)
        display.vv(f"fleet.rollout.rolling: {host.name} started ({len(rollout.in_flight)} in flight)")
        return True

    def _halt_reason(self, rollout: _Rollout, iterator: PlayIterator) -> str:
        if core.play_ended(iterator):
            return "meta: end_play"
        failing = [h.name for h in rollout.in_flight if core.failed_or_unreachable(self, iterator, h)]
        failed = rollout.failed_done + failing
        budget = rollout.limits.max_failures
        if len(failed) > budget:
            return f"{len(failed)} hosts failed, more than rollout_max_failures={budget}"
        if rollout.canary_pending and failed:
            return f"canary failed: {', '.join(failed)}"
        return ""

    def _any_in_rescue(self, rollout: _Rollout, iterator: PlayIterator) -> bool:
        """Whether a host in flight is running a rescue section (at any block depth). Its failure
        is not counted until the rescue ends, so no host is admitted in the meantime."""
        return any(core.in_rescue(iterator, host) for host in rollout.in_flight)

    def _window_has_room(self, rollout: _Rollout) -> bool:
        """Whether the next host may start now, within the window of its step. The first host of a
        step waits until every host of the steps before it finished. Ends the canary wave, with its
        pause, once every canary host finished (the budget check before this one saw that none failed)."""
        limits = rollout.limits
        step = limits.step_of(len(rollout.admitted) + len(rollout.not_started))
        if len(rollout.in_flight) >= limits.window_of(step):
            return False
        if step > rollout.step:
            if rollout.in_flight:
                return False
            rollout.step = step
            if rollout.canary_pending:
                rollout.canary_pending = False
                display.display(
                    f"fleet.rollout.rolling: canary wave ok ({', '.join(h.name for h in rollout.admitted)}); "
                    f"opening the window of {limits.window_of(step)} in {limits.canary_pause:g}s"
                )
                time.sleep(limits.canary_pause)  # nothing is in flight while the canary wave settles
            if limits.steps:
                hosts = len(rollout.waiting) if step == limits.last_step else limits.steps[step - 1].hosts
                display.display(
                    f"fleet.rollout.rolling: step {step} of {limits.last_step}: "
                    f"{min(hosts, len(rollout.waiting))} hosts, window {limits.window_of(step)}"
                )
        return True

    def _publish_groups(self, members: dict[str, list[str]]) -> None:
        """Later plays target these groups (a later play on the original group would also get the
        hosts that never started). Each rolling play replaces their members."""
        for group_name, host_names in members.items():
            self._inventory.add_group(group_name)
            group = self._inventory.groups[group_name]
            for host in list(group.hosts):
                group.remove_host(host)
            for host_name in host_names:
                self._inventory.add_host(host_name, group=group_name)
        self._inventory.reconcile_inventory()

    def _report(self, rollout: _Rollout, ok: list[str], failed: list[str], untouched: list[str]) -> None:
        # the play's ending in the vocabulary of the journal and the deploy report (docs/outcomes.md)
        budget = rollout.limits.max_failures
        outcome = decide(ok + failed + untouched, failed=failed, untouched=untouched, max_failures=budget)
        counts = f"{len(ok)} ok, {len(failed)} failed, {len(untouched)} not started, of {rollout.total}"
        lines = [f"ROLLOUT: {counts}: {outcome.text}"]
        if rollout.halt_reason:
            lines.append(f"  halted: {rollout.halt_reason}")
        for label, names in (
            ("failed", failed),
            ("not started (untouched)", untouched),
            ("skipped (failed or unreachable in an earlier play)", rollout.skipped),
        ):
            if names:
                lines.append(f"  {label}: {', '.join(names)}")
        display.display("\n".join(lines), color=C.COLOR_ERROR if failed or untouched else C.COLOR_OK)
