# Private to this collection: not a public API, may change without notice.
"""A typed client for HAProxy's runtime API (the "stats socket"), over a unix socket or TCP.

One connection per command, in HAProxy's non-interactive mode: send the command and a newline, read until
HAProxy closes. Every name is validated before a socket is opened, and a command is refused if it could be
split into several (``;``, newline), so nothing unintended is ever written to the socket.
"""

from __future__ import annotations

import csv
import re
import typing as t
from dataclasses import asdict, dataclass, fields

from ansible_collections.fleet.rollout.plugins.module_utils._counts import CountOrPercent
from ansible_collections.fleet.rollout.plugins.module_utils._errors import (
    ConnectionFailedError,
    FleetRolloutError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
)
from ansible_collections.fleet.rollout.plugins.module_utils._haproxy_address import RuntimeApiAddress
from ansible_collections.fleet.rollout.plugins.module_utils._validate import describe_character, validate_name

if t.TYPE_CHECKING:  # typing.Literal is Python 3.8+; module code also runs on 3.7 targets
    AdminCommand = t.Literal["ready", "drain", "maint"]
    HealthCommand = t.Literal["up", "stopping", "down"]

# srv_admin_state bits of `show servers state` (HAProxy include/haproxy/server-t.h).
ADMIN_FORCED_MAINT = 0x01
ADMIN_INHERITED_MAINT = 0x02
ADMIN_CONFIG_MAINT = 0x04
ADMIN_FORCED_DRAIN = 0x08
ADMIN_INHERITED_DRAIN = 0x10
ADMIN_RESOLUTION_MAINT = 0x20
# HAProxy's own SRV_ADMF_MAINT mask: CONFIG_MAINT only remembers a 'disabled' keyword and comes with FORCED.
ADMIN_ANY_MAINT = ADMIN_FORCED_MAINT | ADMIN_INHERITED_MAINT | ADMIN_RESOLUTION_MAINT
ADMIN_ANY_DRAIN = ADMIN_FORCED_DRAIN | ADMIN_INHERITED_DRAIN

# srv_op_state of `show servers state`.
OP_STOPPED = 0
OP_STARTING = 1
OP_RUNNING = 2
OP_STOPPING = 3

# srv_check_state bit: a health check is configured and running (paused while in maintenance).
CHECK_ENABLED = 0x04

MAX_WEIGHT = 256
SERVER_SETTINGS: dict[str, tuple[str, ...]] = {
    "state": ("ready", "drain", "maint"),
    "health": ("up", "stopping", "down"),
}
CLI_LEVELS = ("user", "operator", "admin")
_NOT_FOUND_ANSWERS = ("No such server", "No such backend", "Can't find backend", "No such proxy")
_UNSAFE_IN_COMMAND = re.compile(r"[\x00-\x1f\x7f;#]")


class RuntimeApiError(FleetRolloutError):
    """HAProxy answered a command with an error this client has no more specific type for."""


def _int(value: str | None) -> int:
    """HAProxy leaves a counter empty when it does not apply; that reads as 0."""
    return int(value) if value and value.lstrip("-").isdigit() else 0


@dataclass(frozen=True)
class ServerStat:
    """One server row of ``show stat`` (the counters and the human status)."""

    backend: str
    server: str
    status: str
    weight: int
    scur: int
    qcur: int
    check_status: str
    check_code: str
    check_in_progress: bool
    check_duration_ms: int | None
    check_description: str
    last_check: str
    hrsp_5xx: int
    backup: bool

    @classmethod
    def from_row(cls, row: dict[str, str]) -> ServerStat:
        duration = row.get("check_duration") or ""
        raw_status = row.get("check_status") or ""
        # "* L7OK" means a check is running right now: the status is the last completed check's, but
        # HAProxy has already reset the code to 0, so there is no code to report until it completes.
        in_progress = raw_status.startswith("*")
        return cls(
            backend=row["pxname"],
            server=row["svname"],
            status=row.get("status", ""),
            weight=_int(row.get("weight")),
            scur=_int(row.get("scur")),
            qcur=_int(row.get("qcur")),
            check_status=raw_status.lstrip("* "),
            check_code="" if in_progress else row.get("check_code") or "",
            check_in_progress=in_progress,
            check_duration_ms=int(duration) if duration.isdigit() else None,
            check_description=row.get("check_desc") or "",
            last_check=row.get("last_chk") or "",
            hrsp_5xx=_int(row.get("hrsp_5xx")),
            backup=row.get("bck") == "1",
        )


# The column of ``show servers state`` that holds each number of ServerState.
_STATE_NUMBERS = {
    "port": "srv_port",
    "op_state": "srv_op_state",
    "admin_flags": "srv_admin_state",
    "weight": "srv_uweight",
    "initial_weight": "srv_iweight",
    "check_health": "srv_check_health",
    "check_state": "srv_check_state",
    "server_id": "srv_id",
}


@dataclass(frozen=True)
class ServerState:
    """One row of ``show servers state`` (the admin and operational state, the weights)."""

    backend: str
    server: str
    address: str
    port: int
    op_state: int
    admin_flags: int
    weight: int
    initial_weight: int
    check_health: int
    check_state: int
    server_id: int = 0  # srv_id: the server's number in its backend, which `show stat` takes to show it alone

    @classmethod
    def from_row(cls, row: dict[str, str]) -> ServerState:
        numbers = {name: _int(row.get(column)) for name, column in _STATE_NUMBERS.items()}
        return cls(backend=row["be_name"], server=row["srv_name"], address=row.get("srv_addr", ""), **numbers)


@dataclass(frozen=True)
class ServerSnapshot(ServerStat):
    """A server as one balancer sees it at one moment: ``show servers state`` joined with ``show stat``.
    ``weight`` is the state's (what this run sets), not the stat's effective weight."""

    address: str
    admin_state: str
    op_state: int
    admin_flags: int
    initial_weight: int
    check_enabled: bool

    @classmethod
    def join(cls, state: ServerState, stat: ServerStat) -> ServerSnapshot:
        if state.admin_flags & ADMIN_ANY_MAINT:
            admin_state = "maint"
        elif state.admin_flags & ADMIN_ANY_DRAIN:
            admin_state = "drain"
        else:
            admin_state = "ready"
        seen = {name.name: getattr(stat, name.name) for name in fields(ServerStat)}
        seen.update(backend=state.backend, server=state.server, weight=state.weight)
        return cls(
            **seen,
            address=f"{state.address}:{state.port}" if state.port else state.address,
            admin_state=admin_state,
            op_state=state.op_state,
            admin_flags=state.admin_flags,
            initial_weight=state.initial_weight,
            # Maintenance pauses checks but keeps them enabled, so the bit tells whether one is configured.
            check_enabled=bool(state.check_state & CHECK_ENABLED),
        )

    @property
    def out_of_rotation(self) -> bool:
        """Drained or in maintenance by someone's order (ours or inherited), whatever its health."""
        return self.admin_state != "ready"

    @property
    def idle(self) -> bool:
        return self.scur == 0 and self.qcur == 0

    @property
    def serving(self) -> bool:
        """Takes new requests: ready, operationally up (checks passing or none), weight above zero."""
        return not self.out_of_rotation and self.op_state in (OP_STARTING, OP_RUNNING) and self.weight > 0

    @property
    def up(self) -> bool:
        """UP by the balancer's own health check: plain "UP", not "UP 1/2" (failing) nor "DOWN 1/2"."""
        if self.out_of_rotation or self.op_state != OP_RUNNING:
            return False
        return self.status == "UP" or not self.check_enabled

    def as_dict(self) -> dict[str, t.Any]:
        return asdict(self)


class Weight(CountOrPercent):
    """A weight as asked: absolute (0-256) or a percentage of the server's configured weight."""

    @classmethod
    def parse(cls, raw: t.Any) -> Weight:
        weight = cls.read(raw)
        if weight is None:
            raise InvalidInputError(
                f"weight {raw!r} is neither a number from 0 to {MAX_WEIGHT} nor a percentage like '25%'",
                weight=str(raw),
            )
        if not weight.percent and weight.value > MAX_WEIGHT:
            raise InvalidInputError(
                f"weight {raw!r} is above HAProxy's maximum {MAX_WEIGHT}", weight=str(raw)
            )
        return t.cast(Weight, weight)

    def resolve(self, initial_weight: int) -> int:
        """The absolute weight HAProxy ends up with (it computes percentages the same way, rounding down)."""
        return min(MAX_WEIGHT, self.share_of(initial_weight))


def _server_ref(backend: str, server: str) -> str:
    return f"{validate_name('backend name', backend)}/{validate_name('server name', server)}"


class RuntimeApiClient:
    """Commands and typed answers of one HAProxy runtime API."""

    def __init__(self, address: str, timeout: float = 5.0) -> None:
        self.address = address
        self.timeout = timeout

    def execute(self, command: str) -> str:
        """Send one command and return HAProxy's whole answer.

        A command that HAProxy would split or cut (``;``, ``#``, newline, control characters) is refused
        before the socket is opened.
        """
        bad = _UNSAFE_IN_COMMAND.search(command)
        if bad or not command.strip():
            what = describe_character(bad.group()) if bad else "nothing"
            raise InvalidInputError(f"runtime API command {command!r} is refused: it contains {what}")
        target = RuntimeApiAddress.parse(self.address)
        conn = target.connect(self.timeout)
        try:
            conn.sendall(command.encode("utf-8") + b"\n")
            chunks = []
            while True:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        except OSError as error:
            reason = error.strerror or str(error) or type(error).__name__
            raise ConnectionFailedError(
                f"HAProxy runtime API at {self.address} stopped answering {command!r}: {reason}",
                socket=self.address,
            ) from error
        finally:
            conn.close()
        return b"".join(chunks).decode("utf-8", errors="replace")

    def _fail(self, command: str, answer: str) -> t.NoReturn:
        text = answer.strip()
        details = {"socket": self.address, "command": command, "answer": text}
        if text.startswith("Permission denied"):
            raise PermissionDeniedError(
                f"HAProxy at {self.address} refused {command!r}: Permission denied "
                "(the socket needs 'level admin')",
                **details,
            )
        if text.startswith(_NOT_FOUND_ANSWERS):
            raise NotFoundError(f"HAProxy at {self.address} answered {command!r} with: {text}", **details)
        raise RuntimeApiError(f"HAProxy at {self.address} rejected {command!r}: {text}", **details)

    def _execute_silent(self, command: str) -> None:
        """A command that answers nothing on success (the set commands)."""
        answer = self.execute(command)
        if answer.strip():
            self._fail(command, answer)

    def cli_level(self) -> str:
        """The privilege level of this socket: "user", "operator" or "admin"."""
        answer = self.execute("show cli level").strip()
        if answer not in CLI_LEVELS:
            self._fail("show cli level", answer)
        return answer

    def process_id(self) -> int | None:
        """The pid of the HAProxy process that answers (``show info``): a reload answers from a new one."""
        for line in self.execute("show info").splitlines():
            name, _colon, value = line.partition(":")
            if name.strip() == "Pid" and value.strip().isdigit():
                return int(value.strip())
        return None

    def require_admin(self) -> None:
        """Fail clearly, before any change, when this socket cannot change server state.

        An HAProxy too old to know ``show cli level`` is let through: its set commands answer
        "Permission denied", which raises the same error.
        """
        try:
            level = self.cli_level()
        except RuntimeApiError as error:
            if str(error.details.get("answer", "")).startswith("Unknown command"):
                return
            raise
        if level != "admin":
            raise PermissionDeniedError(
                f"HAProxy runtime API socket {self.address} is at level {level!r}; "
                "changing server state needs 'level admin' on its 'stats socket' line",
                socket=self.address,
                level=level,
            )

    def show_stat(self, backend: str | None = None, server_id: int = -1) -> list[ServerStat]:
        """Server rows of ``show stat``, of one backend or all; of the servers numbered ``server_id`` only,
        unless it is -1."""
        return [ServerStat.from_row(row) for row in self.show_stat_rows(backend, server_id)]

    def show_stat_rows(self, backend: str | None = None, server_id: int = -1) -> list[dict[str, str]]:
        """Server rows of ``show stat`` as column -> value, every counter HAProxy reports."""
        scope = validate_name("backend name", backend) if backend is not None else "-1"
        command = f"show stat {scope} 4 {int(server_id)}"  # type 4: servers only
        answer = self.execute(command)
        if not answer.startswith("# "):
            self._fail(command, answer)
        rows = csv.DictReader(answer[2:].splitlines())
        return [dict(row) for row in rows if row.get("svname")]

    def show_servers_state(self, backend: str | None = None, server: str | None = None) -> list[ServerState]:
        """Rows of ``show servers state``, of one backend or all; of the server named ``server`` only, unless
        it is None."""
        command = "show servers state"
        if backend is not None:
            command += " " + validate_name("backend name", backend)
        answer = self.execute(command)
        lines = answer.splitlines()
        # First line: the format version ("1"); second: "# " and the column names.
        if len(lines) < 2 or not lines[1].startswith("# "):
            self._fail(command, answer)
        columns = lines[1][2:].split()
        rows = [line.split() for line in lines[2:] if line.strip()]
        if server is not None and "srv_name" in columns:
            name = columns.index("srv_name")  # hundreds of rows, one wanted: only it becomes a ServerState
            rows = [row for row in rows if len(row) > name and row[name] == server]
        return [ServerState.from_row(dict(zip(columns, row))) for row in rows]

    def servers(self, backend: str | None = None, server: str | None = None) -> list[ServerSnapshot]:
        """Every server (of one backend or all) with state and counters joined; only the one named
        ``server`` unless it is None: a poll of one server of hundreds then reads its own counters only."""
        states = self.show_servers_state(backend, server)
        numbers = {state.server_id for state in states}
        server_id = numbers.pop() if server is not None and len(numbers) == 1 else -1
        stats = {(row.backend, row.server): row for row in self.show_stat(backend, server_id)}
        return [
            ServerSnapshot.join(state, stats[(state.backend, state.server)])
            for state in states
            if (state.backend, state.server) in stats
        ]

    def set_server(self, backend: str, server: str, setting: str, value: str) -> None:
        """``set server <backend>/<server> <setting> <value>`` for state, health or weight."""
        if setting == "weight":
            value = str(Weight.parse(value))
        elif value not in SERVER_SETTINGS.get(setting, ()):
            raise InvalidInputError(f"cannot set server {setting} to {value!r}", setting=setting, value=value)
        self._execute_silent(f"set server {_server_ref(backend, server)} {setting} {value}")

    def set_server_state(self, backend: str, server: str, state: AdminCommand) -> None:
        self.set_server(backend, server, "state", state)

    def set_server_health(self, backend: str, server: str, health: HealthCommand) -> None:
        self.set_server(backend, server, "health", health)

    def set_server_weight(self, backend: str, server: str, weight: Weight) -> None:
        self.set_server(backend, server, "weight", str(weight))

    def shutdown_sessions(self, backend: str, server: str) -> None:
        """Kill every session still open on the server (clients see them cut)."""
        self._execute_silent(f"shutdown sessions server {_server_ref(backend, server)}")
