# Copyright (c) fleet.rollout developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
# ruff: noqa: E402 (ansible-test wants DOCUMENTATION above every import)

from __future__ import annotations

DOCUMENTATION = r"""
name: rollout_journal
type: notification
short_description: Keeps a JSON journal of every rollout on the controller
version_added: 1.0.0
author: fleet.rollout developers (!UNKNOWN)
description:
  - Writes one JSON file per C(ansible-playbook) run, C(<journal dir>/<run id>-<target>.json) (the run id is
    the start time in UTC and the process id, so the files sort by time), with the target
    (C(deploy_target), else the host pattern of the first play), the version (C(deploy_version)), the window
    (C(rollout_window)), the canary (C(rollout_canary)) and the strategy of the play that ran the role, and,
    for every target host, each phase of its cycle with its start and end times, its outcome (C(ok),
    C(changed), C(failed), C(unreachable)) and, when it failed, the task and the message; at the end every
    host's outcome, the hosts by outcome and the result of the run, decided as the filter
    C(fleet.rollout.rollout_outcome) and the C(fleet.rollout.rolling) strategy decide them (one
    vocabulary, C(docs/outcomes.md)).
  - "A host's outcome: C(ok); C(reverted) when the deploy role's C(rollback) entry point took it back;
    C(failed); C(unreachable); C(untouched) when the role never ran there."
  - "The result: C(succeeded) (the status C(complete)); C(failed) (C(complete_with_failures): failed hosts,
    none left unstarted, within the budget); C(halted) (C(halted), C(halted_reverted), C(worse)): failures
    beyond the budget, some hosts rolled and others never started, or a release the analysis found worse.
    The budget (C(rollout_max_failures)) and the analysis's reasons count when the deploy playbook's
    decision (the fact C(deploy_roll)) ran; without it no budget is known."
  - A phase is a run of consecutive tasks of one host from the same task file of the role
    C(fleet.rollout.deploy), named after the file (C(stage), C(rotation), C(drain), C(switch), C(restart),
    C(verify), C(enable); C(check) for C(main.yml) and the argument validation). Hooks belong to the step
    that runs them; everything under C(recover.yml) is C(recover); the own tasks of the C(rollback) entry
    point (and of the deprecated role C(fleet.rollout.rollback)) are C(rollback). Skipped tasks make no
    phase, nor does a host's lease taken or given back (C(lease) only when it fails, held by another
    run). Tasks outside the roles are C(preflight), or C(after) once the host's cycle began; they count
    only on the hosts of the plays on the target (a report play on C(localhost) adds no host). A task in
    flight is shown as the host's C(running).
  - "An audit of the rollout locks the run took from another run: C(lock_takeovers), one entry per
    M(fleet.rollout.rollout_lock) task whose result has a C(takeover), with that reason (C(expired),
    C(holder_gone): its ansible-playbook process was gone, C(forced): broken with C(force), as
    C(-e deploy_lock_force=true) does), the C(previous_holder) it was taken from, the message and when
    (C(at)). The key is there only when the run took a lock over."
  - A host found back in rotation while drained (an HAProxy reload that lost the runtime state, another
    tool) and drained again has C(redrains), with the balancer and backend of each, C(during=drain)
    (while its drain waited, with the number of C(times)) or C(during=hold) (by the watcher of its drain,
    see O(fleet.rollout.lb_member#module:hold), with the time C(at)).
  - The file is written as the run goes, replaced atomically (a temporary file renamed over it) at most
    every O(write_interval) seconds and never later than that after a change. A run killed at any moment,
    even with SIGKILL, leaves a whole JSON journal whose C(result) is C(running). A run ended by SIGTERM, by
    an interrupt or by an error before its recap ends as C(interrupted).
  - The play variable C(rollout_journal_dir) (C(vars) or C(-e)) chooses the directory for one run and
    wins over O(journal_dir); a relative path is relative to the current directory.
  - This callback must be enabled, for example with C(ANSIBLE_CALLBACKS_ENABLED=fleet.rollout.rollout_journal)
    in the environment of the rollout or C(callbacks_enabled = fleet.rollout.rollout_journal) in the
    C([defaults]) section of its C(ansible.cfg). A playbook cannot enable a callback.
requirements:
  - enabled with C(callbacks_enabled) (C(ansible.cfg)) or C(ANSIBLE_CALLBACKS_ENABLED)
options:
  journal_dir:
    description:
      - The directory of the journals, created when missing.
      - The play variable C(rollout_journal_dir) wins over this option.
    type: path
    default: ~/.ansible/fleet-rollout/journal
    env:
      - name: FLEET_ROLLOUT_JOURNAL_DIR
    ini:
      - section: callback_rollout_journal
        key: journal_dir
  write_interval:
    description:
      - At most one write of the journal every this many seconds while the run goes on; a change is on
        disk at the latest this long after it happened. The final journal is always written.
      - C(0) writes after every event.
    type: float
    default: 0.2
    env:
      - name: FLEET_ROLLOUT_JOURNAL_WRITE_INTERVAL
    ini:
      - section: callback_rollout_journal
        key: write_interval
notes:
  - The journal is a record for people and tools; a directory it cannot write to gives one warning and
    never stops the rollout.
  - A process killed in the middle of a write may leave a hidden C(.<journal>.<random>.tmp) file beside
    the journal; the journal itself is always whole.
"""

import atexit
import os
import signal
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ansible import constants as C
from ansible import context
from ansible.errors import AnsibleError
from ansible.release import __version__ as ansible_core_version
from ansible.template import Templar
from ansible_collections.fleet.rollout.plugins.plugin_utils import _journal
from ansible_collections.fleet.rollout.plugins.plugin_utils._callback import RolloutCallback
from ansible_collections.fleet.rollout.plugins.plugin_utils._journal_file import JournalFile
from ansible_collections.fleet.rollout.plugins.plugin_utils._rolling_options import (
    CANARY,
    DEFAULTS,
    WINDOW,
    RolloutOptionError,
    listed,
)
from ansible_collections.fleet.rollout.plugins.plugin_utils._task_result import (
    checks_settings_only,
    failure_message,
    redrain_events,
    result_parts,
    task_chain,
    task_key,
)

if TYPE_CHECKING:
    from ansible.executor.stats import AggregateStats
    from ansible.inventory.host import Host
    from ansible.playbook import Playbook
    from ansible.playbook.play import Play
    from ansible.playbook.task import Task

JOURNAL_DIR_VAR = "rollout_journal_dir"
LOCK_ACTIONS = frozenset({"fleet.rollout.rollout_lock", "rollout_lock"})
MEMBER_ACTIONS = frozenset({"fleet.rollout.lb_member", "lb_member"})
DECISION_FACT = "deploy_roll"  # the deploy playbook's "Sort the targets by how their roll ended"
ENDED_EARLY = "ansible-playbook ended before the play recap (interrupted, or stopped by an error)"
TERMINATED = "ansible-playbook was terminated (SIGTERM) before the play recap"


class CallbackModule(RolloutCallback, name="rollout_journal", kind="notification", needs_enabled=True):
    """Turns the events of a run into the journal of fleet.rollout.plugins.plugin_utils._journal."""

    def __init__(self, display: Any = None) -> None:
        super().__init__(display=display)
        # ansible-core sends callbacks one at a time (under the task queue manager's lock), from the main
        # thread and from its results thread; this lock also keeps the timed writes out of a change.
        self._lock = threading.RLock()
        self._journal: _journal.Journal | None = None
        self._file: JournalFile | None = None
        self._playbook: str | None = None
        self._play: _PlaySettings | None = None  # of the play that runs now
        self._targets: set[str] = set()  # host patterns of the rollout's target plays
        self._committed = False  # the settings of the play that ran the roles are in the journal
        self._warned = False
        self._finished = False

    # ---- the run ------------------------------------------------------------------------------------
    def v2_playbook_on_start(self, playbook: Playbook) -> None:
        with self._lock:
            if self._playbook is None:
                self._playbook = str(getattr(playbook, "_file_name", "") or "") or None

    def v2_playbook_on_play_start(self, play: Play) -> None:
        with self._lock:
            now = time.time()
            current = self._play = self._play_settings(play)
            journal = self._journal
            if journal is None:
                journal = self._start(current.journal_dir, current.target_var or current.pattern, now)
                journal.set(target=current.target_var or current.pattern)
                self._targets.add(current.pattern)
            if current.target_var:
                self._targets.add(current.target_var)
            if not self._committed:  # for now: a run killed before the roles started still says what it was
                journal.set(version=current.version, window=current.window, canary=current.canary)
            # plays on other hosts (a report on localhost) add no host; their role tasks would
            hosts = current.hosts if current.pattern in self._targets else []
            journal.play_started(str(play.get_name()), current.strategy, hosts, now)
            self._changed()

    def v2_runner_on_start(self, host: Host, task: Task) -> None:
        with self._lock:
            if self._journal is not None:
                self._journal.task_started(
                    host.get_name(),
                    task.get_name(),
                    self._phase(task, host),
                    at=time.time(),
                    key=task_key(task),
                )
                self._changed()

    def v2_runner_on_ok(self, result: Any) -> None:
        host, task, data = result_parts(result)
        self._note_decision(data)
        self._note_lock_takeover(task, data)
        self._note_redrains(host, task, data)
        self._finished_task(host, task, _journal.CHANGED if data.get("changed") else _journal.OK, None)

    def v2_runner_on_failed(self, result: Any, ignore_errors: bool = False) -> None:
        host, task, data = result_parts(result)
        self._finished_task(
            host, task, _journal.IGNORED if ignore_errors else _journal.FAILED, failure_message(data)
        )

    def v2_runner_on_unreachable(self, result: Any) -> None:
        host, task, data = result_parts(result)
        self._finished_task(host, task, _journal.UNREACHABLE, failure_message(data))

    def v2_runner_on_skipped(self, result: Any) -> None:
        host, task, _data = result_parts(result)
        self._finished_task(host, task, _journal.SKIPPED, None)

    def v2_playbook_on_stats(self, stats: AggregateStats) -> None:
        with self._lock:
            if self._journal is None or self._file is None or self._finished:
                return
            totals = {}
            for name in self._journal.hosts:
                summary = stats.summarize(name)
                totals[name] = _journal.HostTotals(summary.get("failures", 0), summary.get("unreachable", 0))
            self._journal.finish(totals, time.time())
            self._close()
            if self._file.writes:
                self._display.display(
                    f"ROLLOUT JOURNAL: {self._file.path} ({self._journal.result})",
                    color=C.COLOR_OK if self._journal.result == "succeeded" else C.COLOR_ERROR,
                )

    # ---- helpers ------------------------------------------------------------------------------------
    def _start(self, journal_dir: Any, target: str, now: float) -> _journal.Journal:
        directory = Path(os.path.expanduser(str(journal_dir or self.get_option("journal_dir"))))
        journal = _journal.Journal(_journal.new_run_id(now, os.getpid()), now)
        journal.set(
            playbook=self._playbook,
            check_mode=bool(context.CLIARGS.get("check", False)),
            ansible_core=ansible_core_version,
        )
        self._journal = journal
        self._file = JournalFile(
            directory.absolute() / _journal.file_name(journal.run_id, target),
            journal.to_dict,
            interval=float(self.get_option("write_interval")),
            on_error=self._write_failed,
            lock=self._lock,
        )
        atexit.register(self._at_exit)
        self._catch_sigterm()
        return journal

    def _play_settings(self, play: Play) -> _PlaySettings:
        """The play's (and extra) variables the journal records, templated; the version may also be a
        variable of the first target host."""
        variables = play.get_variable_manager().get_vars(play=play)
        templar = Templar(loader=play.get_loader(), variables=variables)

        def value(name: str) -> Any:
            if name not in variables:
                return None
            try:
                return templar.template(variables[name])
            except AnsibleError as error:
                self._display.vv(f"fleet.rollout.rollout_journal: cannot template {name}: {error}")
                return None

        hosts = [str(name) for name in variables.get("ansible_play_hosts_all") or []]
        version = value("deploy_version")
        if version is None and hosts:
            version = self._host_value(variables, hosts[0], "deploy_version")
        pattern = play.hosts if isinstance(play.hosts, str) else ",".join(map(str, play.hosts or []))
        target = value("deploy_target")
        return _PlaySettings(
            journal_dir=value(JOURNAL_DIR_VAR),
            pattern=pattern or "all",
            target_var=str(target) if target else None,
            strategy=str(play.strategy) if play.strategy else None,
            version=version,
            window=_count(value(WINDOW), DEFAULTS[WINDOW]),
            canary=_count(value(CANARY), DEFAULTS[CANARY]),
            hosts=hosts,
        )

    def _host_value(self, variables: Mapping[str, Any], host: str, name: str) -> Any:
        try:
            return variables["hostvars"][host].get(name)
        except (AnsibleError, KeyError, TypeError, AttributeError) as error:
            self._display.vv(f"fleet.rollout.rollout_journal: cannot read {name} of {host}: {error}")
            return None

    def _phase(self, task: Task, host: Host) -> str | None:
        """The task's phase; None outside the roles, and on a host that is no target (a role's task run
        on localhost by a play on other hosts: the deploy playbook's final release analysis)."""
        targets = self._play is not None and self._play.pattern in self._targets
        if not targets and self._journal is not None and host.get_name() not in self._journal.hosts:
            return None
        if checks_settings_only(task):
            return None  # the deploy playbook's preflight validating the role's settings: no cycle yet
        return _journal.phase_of(task_chain(task), in_role=getattr(task, "_role", None) is not None)

    def _finished_task(self, host: Host, task: Task, status: str, msg: Any) -> None:
        with self._lock:
            journal = self._journal
            if journal is None:
                return
            phase = self._phase(task, host)
            # (a release analysis read in preflight, or the staging of every target before the roll, is a
            # role task too, but no sign of the roll play)
            cycle = phase is not None and phase not in (_journal.ANALYSIS, _journal.STAGE)
            if cycle and status != _journal.SKIPPED and not self._committed and self._play is not None:
                # the settings of the play that runs the roles (a later revert play has its own)
                current = self._play
                journal.set(
                    strategy=current.strategy,
                    version=current.version,
                    window=current.window,
                    canary=current.canary,
                )
                self._committed = True
            journal.task_finished(
                host.get_name(), task.get_name(), phase, status, at=time.time(), msg=msg, key=task_key(task)
            )
            self._changed()

    def _note_decision(self, data: Mapping[str, Any]) -> None:
        """The deploy playbook's decision (the fact deploy_roll, from fleet.rollout.rollout_outcome): the
        journal's result then counts the failure budget and the release analysis's reasons too."""
        facts = data.get("ansible_facts")
        decision = facts.get(DECISION_FACT) if isinstance(facts, Mapping) else None
        if not isinstance(decision, Mapping) or "status" not in decision:
            return
        budget = decision.get("max_failures")
        worse = decision.get("worse")
        with self._lock:
            if self._journal is not None:
                self._journal.decided(
                    worse=[str(reason) for reason in worse] if isinstance(worse, list) else [],
                    max_failures=budget if isinstance(budget, int) and not isinstance(budget, bool) else None,
                )

    def _note_lock_takeover(self, task: Task, data: Mapping[str, Any]) -> None:
        """A rollout lock this run took from another (its result's takeover: expired, holder_gone,
        forced), audited with the holder it was taken from."""
        if (getattr(task, "resolved_action", None) or task.action) not in LOCK_ACTIONS:
            return
        takeover = data.get("takeover")
        if not isinstance(takeover, str) or not takeover:
            return
        with self._lock:
            if self._journal is not None:
                self._journal.lock_taken(takeover, data.get("previous_holder"), data.get("msg"), time.time())
                self._changed()

    def _note_redrains(self, host: Host, task: Task, data: Mapping[str, Any]) -> None:
        if (getattr(task, "resolved_action", None) or task.action) not in MEMBER_ACTIONS:
            return
        events = redrain_events(data)
        if events:
            with self._lock:
                if self._journal is not None:
                    self._journal.redrained(host.get_name(), events)
                    self._changed()

    def _changed(self) -> None:
        if self._file is not None and not self._finished:
            self._file.changed()

    def _close(self) -> None:
        if self._file is not None:
            self._file.close()
        self._finished = True

    def _at_exit(self) -> None:
        self._interrupted(ENDED_EARLY)

    def _interrupted(self, msg: str) -> None:
        with self._lock:
            if self._journal is not None and not self._finished:
                self._journal.interrupt(time.time(), msg)
                self._close()

    def _catch_sigterm(self) -> None:
        """Journal a SIGTERM as ``interrupted``, then let ansible-core's handler (which stops the workers
        and ends the process by the same signal, without running atexit) do the rest."""
        if threading.current_thread() is not threading.main_thread():
            return
        previous = signal.getsignal(signal.SIGTERM)
        if previous in (signal.SIG_IGN, None):
            return

        def on_sigterm(signum: int, frame: Any) -> None:
            signal.signal(signal.SIGTERM, previous)
            self._interrupted(TERMINATED)
            if callable(previous):
                previous(signum, frame)
            else:
                os.kill(os.getpid(), signum)

        signal.signal(signal.SIGTERM, on_sigterm)

    def _write_failed(self, error: OSError) -> None:
        if not self._warned:
            self._warned = True
            self._display.warning(f"fleet.rollout.rollout_journal: cannot write the journal: {error}")


@dataclass(frozen=True)
class _PlaySettings:
    journal_dir: Any
    pattern: str
    target_var: str | None
    strategy: str | None
    version: Any
    window: Any
    canary: Any
    hosts: list[str]


def _count(raw: Any, default: object) -> Any:
    """A count of hosts as a number when it is one (``-e rollout_window=3`` arrives as text); a list of
    them (a window in steps, ``-e rollout_window=[1,3]`` arriving as text too) as a list."""
    if raw is None:
        raw = default
    try:
        raw = listed(WINDOW, raw)
    except RolloutOptionError:
        return raw  # the strategy or serial refuses it; the journal keeps what was given
    if isinstance(raw, list | tuple):
        return [_count(item, None) for item in raw]
    if isinstance(raw, str) and raw.strip().isdigit():
        return int(raw.strip())
    return raw
