"""Observers that sample something at a steady pace from a thread of their own while a ``with`` block runs
(a balancer's view of its servers, the machine's load): the tests' and the benches' witnesses beside what
they watch."""

from __future__ import annotations

import threading
import time
from typing import Self


class Sampler:
    """A subclass's ``sample`` runs every ``period`` seconds in a daemon thread, from ``with`` (or ``start``)
    until the block ends (or ``stop``). The period counts from each sample's start, so a slow sample does not
    stretch the pace."""

    def __init__(self, period: float, name: str = "lab-sampler") -> None:
        self.period = period
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def sample(self) -> None:
        raise NotImplementedError

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        """No sample after the one running; a sample may call it when there is nothing more to see."""
        self._stop.set()
        if threading.current_thread() is not self._thread:
            self._thread.join()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            self.sample()
            self._stop.wait(max(0.0, started + self.period - time.monotonic()))
