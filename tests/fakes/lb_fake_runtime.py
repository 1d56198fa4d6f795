"""A small stand-in for HAProxy's runtime API, for the lb_member tests.

tests/integration/test_lb_fake_contract.py runs one scenario of the collection's code against this fake
and against the lab's real HAProxy and requires both to be seen alike: a change here must keep it passing.

A thread serves a unix socket (or TCP on 127.0.0.1) and records every byte it receives, so a test can prove
that nothing was sent. Answers come from an in-memory model that follows what HAProxy 2.6 was observed to do:

- ``set server ... state ready|drain`` out of maintenance puts the server UP at once (health = rise) and
  checks it afterwards; a health set while in maintenance is reset on the way out;
- ``set server ... health down`` holds a server DOWN until ``rise`` checks pass;
- a server DOWN while drained reads "DOWN", not "DRAIN";
- set commands answer an empty line; errors answer "No such server." etc.; an operator socket answers
  "Permission denied" to set commands.

Time is the test's: ``tick()`` is one check interval (traffic, then checks, then sessions finishing).
"""

from __future__ import annotations

import shutil
import socket
import socketserver
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

RISE = 2
FALL = 2
FULL_HEALTH = RISE + FALL - 1
FORCED_MAINT, FORCED_DRAIN = 0x01, 0x08
CHECK_DESCRIPTIONS = {"L7OK": "Layer7 check passed", "L7STS": "Layer7 wrong status"}

# Column names of HAProxy 2.6's answers (show stat is cut after the columns we read: order is what matters).
STAT_HEADER = (
    "pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,"
    "weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,"
    "rate_lim,rate_max,check_status,check_code,check_duration,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,"
    "hrsp_other,hanafail,req_rate,req_rate_max,req_tot,cli_abrt,srv_abrt,comp_in,comp_out,comp_byp,comp_rsp,"
    "lastsess,last_chk,last_agt,qtime,ctime,rtime,ttime,agent_status,agent_code,agent_duration,check_desc,"
    "agent_desc,check_rise,check_fall,check_health,agent_rise,agent_fall,agent_health,addr,cookie,mode,algo"
)
STATE_HEADER = (
    "be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight "
    "srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state "
    "srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port "
    "srv_check_addr srv_agent_addr srv_agent_port"
)
STAT_COLUMNS = STAT_HEADER.split(",")
STATE_COLUMNS = STATE_HEADER.split()


@dataclass
class FakeServer:
    backend: str
    name: str
    address: str = "127.0.1.1"
    weight: int = 1
    initial_weight: int = 1
    admin: int = 0
    check: bool = True
    healthy: bool = True  # whether the app would pass the health check
    health: int = FULL_HEALTH
    last_check_ok: bool = True
    check_running: bool = False  # HAProxy shows "* <last status>" and no code while a check runs
    sessions: list[int] = field(default_factory=list)  # ticks left for each open session
    qcur: int = 0
    backup: bool = False
    served: int = 0  # ticks during which the balancer sent it new requests

    @property
    def maint(self) -> bool:
        return bool(self.admin & FORCED_MAINT)

    @property
    def running(self) -> bool:
        return not self.maint and self.health >= (RISE if self.check else 1)

    @property
    def serving(self) -> bool:
        return self.running and not self.admin & FORCED_DRAIN and self.weight > 0

    @property
    def status(self) -> str:
        if self.maint:
            return "MAINT"
        if not self.check:
            return "no check" if self.running else "DOWN"
        if self.health < RISE:
            return f"DOWN {self.health}/{RISE}" if self.health else "DOWN"
        word = "DRAIN" if self.admin & FORCED_DRAIN else "UP"
        return word if self.health == FULL_HEALTH else f"{word} {self.health - RISE + 1}/{FALL}"

    def leave_maint(self) -> None:
        if self.maint:
            self.admin &= ~FORCED_MAINT
            self.health = RISE if self.check else FULL_HEALTH

    def run_check(self) -> None:
        if not self.check or self.maint:
            return
        self.last_check_ok = self.healthy
        if self.healthy:
            self.health = FULL_HEALTH if self.health + 1 >= RISE else self.health + 1
        else:
            self.health = self.health - 1 if self.health - 1 >= RISE else 0

    def stat_row(self, iid: int, sid: int) -> str:
        check_status = "" if self.maint or not self.check else ("L7OK" if self.last_check_ok else "L7STS")
        values = {
            "pxname": self.backend,
            "svname": self.name,
            "qcur": str(self.qcur),
            "scur": str(len(self.sessions)),
            "status": self.status,
            "weight": str(self.weight),
            "bck": "1" if self.backup else "0",
            "act": "0" if self.backup else "1",
            "iid": str(iid),
            "sid": str(sid),
            "check_status": f"* {check_status}" if check_status and self.check_running else check_status,
            "check_code": "" if self.check_running else {"L7OK": "200", "L7STS": "500"}.get(check_status, ""),
            "check_duration": "1" if check_status else "",
            "check_desc": {"L7OK": "Layer7 check passed", "L7STS": "Layer7 wrong status"}.get(
                check_status, ""
            ),
            "last_chk": "Internal Server Error" if check_status == "L7STS" and not self.check_running else "",
            "hrsp_5xx": "0",
            "addr": f"{self.address}:8000",
        }
        return ",".join(values.get(column, "") for column in STAT_COLUMNS) + ","

    def state_row(self, iid: int, sid: int) -> str:
        op_state = 2 if self.running else 0
        check_state = (14 if self.maint else 6) if self.check else 0
        return (
            f"{iid} {self.backend} {sid} {self.name} {self.address} {op_state} {self.admin} {self.weight} "
            f"{self.initial_weight} 5 15 3 {self.health} {check_state} 0 0 0 - 8000 - 0 0 - - 0"
        )


class FakeRuntimeApi:
    """The fake HAProxy: ``with FakeRuntimeApi({"app": ["app01", "app02"]}) as api: api.address``."""

    def __init__(
        self,
        backends: dict[str, list[str]],
        level: str = "admin",
        tcp: bool = False,
        canned: dict[str, str] | None = None,
    ) -> None:
        self.backends = backends
        self.level = level
        self.tcp = tcp
        self.canned = canned or {}  # fixed answers (real HAProxy transcripts) that win over the model
        self.pid = 4242  # the answering process's (a reload starts a new one)
        self.servers: dict[tuple[str, str], FakeServer] = {}
        self.received: list[bytes] = []  # every byte, per connection
        self.lock = threading.RLock()
        self.directory = ""
        self.address = ""
        self._server: socketserver.BaseServer | None = None

    # -- model -------------------------------------------------------------------------------------------

    def server(self, name: str, backend: str | None = None) -> FakeServer:
        backend = backend or next(b for b, names in self.backends.items() if name in names)
        return self.servers[(backend, name)]

    def everywhere(self, name: str) -> list[FakeServer]:
        return [s for (_backend, n), s in self.servers.items() if n == name]

    @property
    def commands(self) -> list[str]:
        return [raw.decode(errors="replace").rstrip("\n") for raw in self.received]

    @property
    def set_commands(self) -> list[str]:
        return [c for c in self.commands if not c.startswith("show ")]

    def tick(self) -> None:
        with self.lock:
            for server in self.servers.values():
                if server.serving:
                    server.served += 1
                server.run_check()
                server.sessions = [left - 1 for left in server.sessions if left > 1]

    def answer(self, command: str) -> str:
        with self.lock:
            words = command.split()
            fixed = {
                "show cli level": f"{self.level}\n\n",
                "show info": f"Name: HAProxy\nVersion: 2.6.12\nPid: {self.pid}\n\n",
                **self.canned,
            }
            if command in fixed:
                return fixed[command]
            if words[:2] == ["show", "stat"]:
                backend = words[2] if len(words) > 2 and words[2] != "-1" else None
                return self.show_stat(backend, int(words[4]) if len(words) > 4 else -1)
            if words[:3] == ["show", "servers", "state"]:
                return self.show_servers_state(words[3] if len(words) > 3 else None)
            if words[:2] == ["set", "server"] or words[:3] == ["shutdown", "sessions", "server"]:
                return self.set_server(words)
            return "Unknown command.\n\n"

    def numbered(self, backend: str | None) -> list[tuple[int, int, FakeServer]]:
        """(proxy id, server id, server) of each server of ``backend`` (of every backend for None), numbered
        as HAProxy numbers them: proxies from 3, servers from 1 in each."""
        return [
            (iid, sid, self.servers[(name, server)])
            for iid, (name, names) in enumerate(self.backends.items(), start=3)
            if backend in (None, name)
            for sid, server in enumerate(names, start=1)
        ]

    def show_stat(self, backend: str | None, server_id: int = -1) -> str:
        """As HAProxy: a server id other than -1 shows that server of each backend shown."""
        if backend is not None and backend not in self.backends:
            return "No such proxy.\n\n"
        numbered = self.numbered(backend)
        rows = [server.stat_row(iid, sid) for iid, sid, server in numbered if server_id in (-1, sid)]
        return "# " + ",".join(STAT_COLUMNS) + ",\n" + "".join(row + "\n" for row in rows) + "\n"

    def show_servers_state(self, backend: str | None) -> str:
        if backend is not None and backend not in self.backends:
            return "Can't find backend.\n\n"
        rows = [server.state_row(iid, sid) for iid, sid, server in self.numbered(backend)]
        return "1\n# " + " ".join(STATE_COLUMNS) + "\n" + "".join(row + "\n" for row in rows) + "\n"

    def set_server(self, words: list[str]) -> str:
        if self.level != "admin":
            return "Permission denied\n\n"
        reference = words[3] if words[0] == "shutdown" else words[2]
        backend, _slash, name = reference.partition("/")
        if backend not in self.backends:
            return "No such backend.\n\n"
        if name not in self.backends[backend]:
            return "No such server.\n\n"
        server = self.servers[(backend, name)]
        if words[0] == "shutdown":
            server.sessions = []
            return "\n"
        setting, value = words[3], words[4]
        if setting == "state" and value == "maint":
            server.admin = (server.admin | FORCED_MAINT) & ~FORCED_DRAIN
        elif setting == "state" and value in ("drain", "ready"):
            server.leave_maint()
            server.admin = server.admin | FORCED_DRAIN if value == "drain" else server.admin & ~FORCED_DRAIN
        elif setting == "health" and not server.maint:
            server.health = 0 if value == "down" else FULL_HEALTH
        elif setting == "weight":
            percent = value.endswith("%")
            number = int(value.rstrip("%"))
            server.weight = server.initial_weight * number // 100 if percent else number
        elif setting not in ("health",):
            return f"unexpected: {' '.join(words)}\n\n"
        return "\n"

    # -- socket ------------------------------------------------------------------------------------------

    def __enter__(self) -> FakeRuntimeApi:
        for backend, names in self.backends.items():
            for index, name in enumerate(names, start=1):
                self.servers[(backend, name)] = FakeServer(backend, name, address=f"127.0.1.{index}")
        fake = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                conn: socket.socket = self.request
                conn.settimeout(5)
                data = b""
                while not data.endswith(b"\n"):
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                with fake.lock:
                    fake.received.append(data)
                conn.sendall(fake.answer(data.decode(errors="replace").strip()).encode())

        server: socketserver.ThreadingTCPServer | socketserver.ThreadingUnixStreamServer
        if self.tcp:
            server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
            self.address = f"tcp://127.0.0.1:{server.server_address[1]}"
        else:
            # A short directory: unix socket paths are limited to 107 bytes, pytest's tmp_path is long.
            self.directory = tempfile.mkdtemp(prefix="fake-haproxy-")
            path = str(Path(self.directory) / "admin.sock")
            server = socketserver.ThreadingUnixStreamServer(path, Handler)
            self.address = path
        server.daemon_threads = True
        self._server = server
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self.directory:
            shutil.rmtree(self.directory, ignore_errors=True)


class FakeTime:
    """The clock and sleep a BalancerMember runs on in tests: each sleep is one tick of every fake."""

    def __init__(self, *fakes: FakeRuntimeApi) -> None:
        self.fakes = fakes
        self.now = 1000.0
        self.sleeps = 0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps += 1
        self.now += seconds
        for fake in self.fakes:
            fake.tick()
