# Copyright (c) fleet.rollout developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
# Private to this collection: not a public API, may change without notice.
"""The ansible-core internals the fleet.rollout.rolling strategy reaches, fenced in this one file.

The strategy extends ansible-core's ``free`` strategy, as ``host_pinned`` does, and reads state that
ansible-core keeps private: the strategy's result deque and blocked hosts, the task queue manager's failed
and unreachable hosts, the play iterator's play and per-host states. A new ansible-core may rename any of
them, and a rename found mid-rollout could leave a host drained from its load balancer. So the strategy
names none of them itself: it calls the functions here, and ``check_core_internals`` looks for every one
before the first host of a play starts, failing the play with an error that names what is missing.

The filter ``fleet.rollout.set_fact_values`` reads the facts ``set_fact`` gave each host where the
variable manager keeps them (``set_facts_of``): ``hostvars[host]`` builds that host's whole variables at
every look. Where they are not found it takes that public path instead, so nothing fails without them.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from ansible.errors import AnsibleError
from ansible.executor.play_iterator import HostState, IteratingStates
from ansible.plugins.strategy import StrategyBase
from ansible.plugins.strategy.free import StrategyModule as FreeStrategyModule
from ansible.release import __version__ as CORE_VERSION

if TYPE_CHECKING:
    from ansible.executor.play_iterator import PlayIterator
    from ansible.inventory.host import Host
    from ansible.playbook.play import Play

# What StrategyBase.__init__ sets and the strategy reads.
STRATEGY_ATTRIBUTES = (
    "_results",
    "_results_lock",
    "_blocked_hosts",
    "_pending_results",
    "_workers",
    "_tqm",
    "_inventory",
    "_loader",
    "_variable_manager",
)
# Methods the strategy overrides: under a new name ansible-core would never call them, and
# get_hosts_left is the admission gate (without it every host would start at once).
STRATEGY_HOOKS = ("get_hosts_left", "_process_pending_results")
TQM_ATTRIBUTES = ("_failed_hosts", "_unreachable_hosts")
ITERATOR_ATTRIBUTES = ("_play", "end_play", "get_host_state", "is_failed", "get_next_task_for_host")
HOST_STATE_ATTRIBUTES = ("run_state", "tasks_child_state", "rescue_child_state", "always_child_state")
ITERATING_STATES = ("RESCUE", "COMPLETE")

_T = TypeVar("_T")


def check_core_internals(strategy: StrategyBase, iterator: PlayIterator) -> None:
    """Raise AnsibleError naming every internal this ansible-core lacks; called before any host runs."""
    missing = missing_core_internals(strategy, iterator)
    if missing:
        raise AnsibleError(
            f"fleet.rollout.rolling: ansible-core {CORE_VERSION} lacks internals the strategy relies on: "
            f"{', '.join(missing)}. No host was started. Run with `-e rollout_strategy=linear` (the "
            "collection's playbooks then roll out in serial batches) until fleet.rollout supports this "
            "ansible-core."
        )


def missing_core_internals(strategy: StrategyBase, iterator: PlayIterator) -> list[str]:
    """The internals not found, as ``Class.attribute``; empty when all are there."""
    missing = [f"StrategyBase.{name}" for name in STRATEGY_ATTRIBUTES if not hasattr(strategy, name)]
    missing += [f"StrategyBase.{name}" for name in STRATEGY_HOOKS if not hasattr(StrategyBase, name)]
    if hasattr(strategy, "_tqm"):
        missing += [f"TaskQueueManager.{name}" for name in TQM_ATTRIBUTES if not hasattr(strategy._tqm, name)]
    missing += [f"PlayIterator.{name}" for name in ITERATOR_ATTRIBUTES if not hasattr(iterator, name)]
    missing += [f"IteratingStates.{name}" for name in ITERATING_STATES if not hasattr(IteratingStates, name)]
    return missing + _missing_host_state_attributes()


def _missing_host_state_attributes() -> list[str]:
    """A host's state is made per host during the play: look at a fresh one, built as PlayIterator does."""
    try:
        state = HostState(blocks=[])
    except TypeError:  # a changed constructor: the attributes cannot be looked at this way
        return ["HostState(blocks=...)"]
    return [f"HostState.{name}" for name in HOST_STATE_ATTRIBUTES if not hasattr(state, name)]


class FreeStrategy(FreeStrategyModule):
    """ansible-core's ``free`` strategy, its private per-pass result hook under a name of the collection's."""

    def _process_pending_results(
        self, iterator: PlayIterator, one_pass: bool = False, max_passes: int | None = None
    ) -> list[object]:
        return self.collect_results(iterator, one_pass, max_passes)

    def collect_results(
        self, iterator: PlayIterator, one_pass: bool = False, max_passes: int | None = None
    ) -> list[object]:
        """Called by free once per pass, after it queued what it could: process the results that
        arrived (ansible-core's own processing)."""
        results: list[object] = super()._process_pending_results(iterator, one_pass, max_passes)
        return results


class _SignallingDeque(deque[_T]):
    """ansible-core's results thread appends each worker result to ``strategy._results`` and notifies
    no one. This deque also sets an event on every append, so the strategy can wait for a result."""

    def __init__(self, items: Iterable[_T], arrived: threading.Event) -> None:
        super().__init__(items)
        self.arrived = arrived

    def append(self, item: _T) -> None:
        super().append(item)
        self.arrived.set()  # after the append: a waiter woken by it finds the result


def install_result_signal(strategy: StrategyBase, arrived: threading.Event) -> None:
    """Make every result the results thread appends set ``arrived``. Call before any task is queued."""
    # the lock the results thread appends under: nothing is appended while the deque is swapped
    with strategy._results_lock:
        strategy._results = _SignallingDeque(strategy._results, arrived)


def is_blocked(strategy: StrategyBase, host_name: str) -> bool:
    """Whether the host is running a task (queued and its result not processed yet)."""
    return bool(strategy._blocked_hosts.get(host_name, False))


def pending_results(strategy: StrategyBase) -> int:
    """How many queued tasks have no processed result yet."""
    return int(strategy._pending_results)


def worker_count(strategy: StrategyBase) -> int:
    """How many worker slots the task queue manager made (``forks``, at most the play's hosts)."""
    return len(strategy._workers)


def is_unreachable(strategy: StrategyBase, host_name: str) -> bool:
    return host_name in strategy._tqm._unreachable_hosts


def failed_or_unreachable(strategy: StrategyBase, iterator: PlayIterator, host: Host) -> bool:
    """Whether the host failed or was unreachable in this play: the task queue manager's view and the
    iterator's (a failed host whose rescue succeeded is in neither)."""
    tqm = strategy._tqm
    name = host.name
    return name in tqm._unreachable_hosts or name in tqm._failed_hosts or bool(iterator.is_failed(host))


def play_of(iterator: PlayIterator) -> Play:
    return iterator._play


def has_task_left(iterator: PlayIterator, host: Host) -> bool:
    """Whether the iterator has another task for the host (peeking: nothing advances)."""
    return iterator.get_next_task_for_host(host, peek=True)[1] is not None


def is_complete(iterator: PlayIterator, host: Host) -> bool:
    """Whether the host's play is over before it ran anything (``meta: end_batch``, say)."""
    return bool(iterator.get_host_state(host).run_state == IteratingStates.COMPLETE)


def in_rescue(iterator: PlayIterator, host: Host) -> bool:
    """Whether the host is running a rescue section, at any block depth (a nested block's state is a
    child state of its parent's)."""
    state = iterator.get_host_state(host)
    while state is not None:
        if state.run_state == IteratingStates.RESCUE:
            return True
        state = state.tasks_child_state or state.rescue_child_state or state.always_child_state
    return False


def play_ended(iterator: PlayIterator) -> bool:
    """Whether the play was ended (``meta: end_play``, or ``end_play`` below)."""
    return bool(iterator.end_play)


def end_play(iterator: PlayIterator) -> None:
    """End the play as ``meta: end_play`` does: PlaybookExecutor then moves on to the next play."""
    iterator.end_play = True


def set_facts_of(hostvars: Any, host: str) -> Mapping[str, Any] | None:
    """The facts ``set_fact`` gave the host (not cacheable ones: every fact the deploy role sets), as the
    variable manager behind ``hostvars`` keeps them; None when this ansible-core keeps them elsewhere."""
    cache = getattr(getattr(hostvars, "_variable_manager", None), "_nonpersistent_fact_cache", None)
    if not isinstance(cache, Mapping):
        return None
    facts = cache.get(host)  # get: the cache is a defaultdict, a look must not add the host
    return facts if isinstance(facts, Mapping) else {}
