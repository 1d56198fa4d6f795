# Private to this collection: not a public API, may change without notice.
"""Holding a drained server out of rotation until this run puts it back.

A drain set through the runtime API lives in the running HAProxy process only: a reload that does not
carry the state over (or another tool) puts the server back in rotation while its host is being
restarted. After a drain, ``lb_member`` can leave a watcher behind (a detached process on the host that
reaches the sockets) that drains the server again within one poll of finding it back, for at most
``hold`` seconds. The next ``lb_member`` call for the same server and sockets stops the watcher first and
reports what it did.

The watcher and its stopper talk through two files named after the server and its sockets: the watcher's
(its pid and events, rewritten atomically, removed when it ends) and the stop request, which stays until
the watcher is gone: a watcher slow to see it (a balancer that does not answer holds one look for its
timeout) still sees it, and a stopper that gives up fails rather than leave a drain behind. No signal is
sent, so a reused pid can never be hit.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
import time
import typing as t

from ansible_collections.fleet.rollout.plugins.module_utils._errors import (
    FleetRolloutError,
    TimeoutExpiredError,
)
from ansible_collections.fleet.rollout.plugins.module_utils._fsutil import iso_time, write_json_atomically
from ansible_collections.fleet.rollout.plugins.module_utils._haproxy import (
    ADMIN_ANY_DRAIN,
    ADMIN_ANY_MAINT,
    RuntimeApiClient,
)
from ansible_collections.fleet.rollout.plugins.module_utils._poll import poll_until
from ansible_collections.fleet.rollout.plugins.module_utils._process import process_runs

STOP_WAIT = 2.0  # seconds a stopper waits for the watcher to end, beyond the watcher's longest look
STOP_POLL = 0.01  # seconds between two looks of a stopper at the watcher's process
LOOK_COMMANDS = 3  # runtime API commands of one look at one backend at most: read, drain, save the state
GONE_AFTER = 30.0  # seconds without one answer from any balancer after which the watcher gives up


def hold_dir() -> str:
    return os.path.join(tempfile.gettempdir(), "fleet-rollout-holds")


@dataclasses.dataclass(frozen=True)
class HoldFiles:
    """Where the watcher of one server on one set of sockets keeps its events and reads its stop."""

    directory: str
    key: str

    @classmethod
    def of(cls, server: str, sockets: t.Sequence[str], directory: str | None = None) -> HoldFiles:
        named = json.dumps([server, sorted(sockets)]).encode("utf-8")
        return cls(directory or hold_dir(), hashlib.sha256(named).hexdigest()[:32])

    @property
    def events(self) -> str:
        return os.path.join(self.directory, f"{self.key}.json")

    @property
    def stop(self) -> str:
        return os.path.join(self.directory, f"{self.key}.stop")


@dataclasses.dataclass
class HoldWatcher:
    """The watcher's loop: every ``interval`` seconds, each (balancer, backend) that holds the server is
    read; one found back in rotation is drained again and the event written down."""

    files: HoldFiles
    server: str
    members: t.Sequence[tuple[RuntimeApiClient, str]]  # (balancer, backend)
    hold: float
    interval: float
    save_state: t.Callable[[RuntimeApiClient], None]
    clock: t.Callable[[], float] = time.monotonic
    sleep: t.Callable[[float], None] = time.sleep
    events: list[dict[str, t.Any]] = dataclasses.field(default_factory=list)

    def run(self) -> None:
        deadline = self.clock() + self.hold
        answered = self.clock()
        self.write()
        try:
            while self.clock() < deadline and not os.path.exists(self.files.stop):
                looks = [self.look(balancer, backend) for balancer, backend in self.members]
                if any(looks):
                    answered = self.clock()
                elif self.clock() - answered > GONE_AFTER:
                    break  # the balancers are gone (taken down, not reloaded)
                self.sleep(self.interval)
        finally:
            # the stop request is its stopper's to remove; the events, only while they are still ours
            if (_read(self.files.events) or {}).get("pid") == os.getpid():
                os.unlink(self.files.events)

    def look(self, balancer: RuntimeApiClient, backend: str) -> bool:
        """One look (and a drain if needed); whether the balancer answered."""
        try:
            states = [s for s in balancer.show_servers_state(backend) if s.server == self.server]
            if not states or states[0].admin_flags & (ADMIN_ANY_MAINT | ADMIN_ANY_DRAIN):
                return True
            balancer.set_server(backend, self.server, "state", "drain")
            self.save_state(balancer)
        except FleetRolloutError:
            return False  # between two processes (a reload): read again at the next poll
        self.events.append({"at": iso_time(time.time()), "balancer": balancer.address, "backend": backend})
        self.write()
        return True

    def longest_look(self) -> float:
        """Seconds between two readings of the stop request at most: one look at every member, each
        command answered within its balancer's timeout, and one interval."""
        return self.interval + sum(LOOK_COMMANDS * balancer.timeout for balancer, _backend in self.members)

    def write(self) -> None:
        document = {"pid": os.getpid(), "longest_look": self.longest_look(), "events": self.events}
        write_json_atomically(self.files.events, document, durable=False)


def start_watcher(watcher: HoldWatcher) -> None:
    """Run ``watcher`` in a detached process (double fork, own session, no inherited descriptors) that
    outlives the task. Returns once the watcher has written its pid down, so that the next stopper finds
    it, however soon it comes."""
    os.makedirs(watcher.files.directory, mode=0o700, exist_ok=True)
    if os.path.exists(watcher.files.stop):  # a stopper's that gave up; its watcher was gone by now
        os.unlink(watcher.files.stop)
    ready_read, ready_write = os.pipe()
    child = os.fork()
    if child:
        os.close(ready_write)
        os.waitpid(child, 0)
        os.read(ready_read, 1)  # end of file once the watcher wrote its pid down (or died)
        os.close(ready_read)
        return
    try:
        os.setsid()
        if os.fork():
            os._exit(0)
        os.close(ready_read)
        watcher.write()
        os.close(ready_write)
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        os.closerange(3, devnull)
        os.closerange(devnull + 1, 65536)
        watcher.run()
    finally:
        os._exit(0)


def stop_watcher(
    files: HoldFiles,
    clock: t.Callable[[], float] = time.monotonic,
    sleep: t.Callable[[float], None] = time.sleep,
) -> list[dict[str, t.Any]]:
    """Ask the watcher of ``files`` (if one runs) to end, wait until its process is gone, and return its
    events. A watcher reads the request between two looks, so the wait is its longest look (which it
    wrote down) plus STOP_WAIT; one still running then raises TimeoutExpiredError and the request stays,
    so that it ends at its next look instead of draining again."""
    written = _read(files.events)
    if written is None:
        if os.path.exists(files.stop):  # an earlier stopper's, which gave up before its watcher ended
            os.unlink(files.stop)
        return []
    seen = list(written.get("events", []))
    pid = written.get("pid")
    if _runs(pid):
        with open(files.stop, "w", encoding="utf-8"):
            pass
        longest = written.get("longest_look")
        wait = (longest if isinstance(longest, (int, float)) else 0.0) + STOP_WAIT

        def ended() -> bool:
            nonlocal seen
            seen = list((_read(files.events) or {}).get("events", seen))
            return not _runs(pid)

        if not poll_until(ended, clock() + wait, STOP_POLL, clock, sleep):
            raise TimeoutExpiredError(
                f"the watcher holding the server drained (pid {pid}) did not end within {wait:g}s of "
                f"being asked to; it ends at its next look at the balancers (stop request {files.stop})"
            )
    if os.path.exists(files.events):  # a watcher killed before it could clean up
        os.unlink(files.events)
    if os.path.exists(files.stop):
        os.unlink(files.stop)
    return seen


def _read(path: str) -> dict[str, t.Any] | None:
    try:
        with open(path, encoding="utf-8") as handle:
            document = json.load(handle)
    except (OSError, ValueError):
        return None
    return document if isinstance(document, dict) else None


def _runs(pid: t.Any) -> bool:
    return isinstance(pid, int) and pid > 1 and process_runs(pid)


def held_warnings(server: str, events: t.Sequence[t.Mapping[str, t.Any]]) -> list[str]:
    return [
        f"{server} was found back in rotation in backend {event.get('backend')} on {event.get('balancer')} "
        f"at {event.get('at')} while held drained (a reload that did not keep the runtime state, another "
        "tool) and was drained again"
        for event in events
    ]
