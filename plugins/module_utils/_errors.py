# Private to this collection: not a public API, may change without notice.
"""The typed errors every piece of fleet.rollout raises; only a module's main() turns them into fail_json."""

from __future__ import annotations

import contextlib
import typing as t


class FleetRolloutError(Exception):
    """Base of every error this collection raises on purpose.

    ``details`` carries the evidence (the last observation, the values that were wrong) so that main()
    can return it beside the message.
    """

    def __init__(self, message: str, **details: t.Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class InvalidInputError(FleetRolloutError):
    """A parameter failed validation; nothing was sent or changed."""


class ConnectionFailedError(FleetRolloutError):
    """A socket, a URL or a host could not be reached, or stopped answering."""


class PermissionDeniedError(FleetRolloutError):
    """The peer answered but refused the operation (e.g. a runtime API socket below admin level)."""


class NotFoundError(FleetRolloutError):
    """A named thing (backend, server, release, lock) does not exist."""


class CapacityError(FleetRolloutError):
    """Acting would take a pool below its capacity floor."""


class TimeoutExpiredError(FleetRolloutError):
    """A condition that was polled for did not come true before its deadline."""


class HealthCheckFailedError(FleetRolloutError):
    """A health check did not pass; ``details`` holds its last observation."""


class ReleaseWorseError(FleetRolloutError):
    """Release analysis found the new release worse than the baseline (or could not judge it, when
    that was asked to fail); ``details`` holds the counts, rates and the test's statistic."""


class ConflictError(FleetRolloutError):
    """Someone else holds what we need (a rollout lock), or state on disk contradicts the request."""


class MissingRequirementError(FleetRolloutError):
    """A Python library the task needs is not installed where the task runs; nothing was done."""


class CommandFailedError(FleetRolloutError):
    """A command the task was given (a restart command) exited non-zero; ``details`` holds rc and output."""


@contextlib.contextmanager
def os_errors(what: str, **details: t.Any) -> t.Iterator[None]:
    """Turn an unexpected filesystem error into a FleetRolloutError: "<what> failed: <reason> (<file>)".

    ``details`` go with it; ``path`` is the file that failed unless given.
    """
    try:
        yield
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        details.setdefault("path", exc.filename)
        raise FleetRolloutError(f"{what} failed: {exc.strerror or exc}{where}", **details) from exc
