"""RuntimeApiClient against a fake runtime API (real HAProxy 2.6 transcripts where parsing is tested)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
from ansible_collections.fleet.rollout.plugins.module_utils._errors import (
    ConnectionFailedError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
)
from ansible_collections.fleet.rollout.plugins.module_utils._haproxy import (
    RuntimeApiClient,
    RuntimeApiError,
    ServerStat,
    Weight,
)
from ansible_collections.fleet.rollout.plugins.module_utils._haproxy_address import RuntimeApiAddress

from tests.fakes.lb_fake_runtime import FakeRuntimeApi

# Captured from HAProxy 2.6.12 (Debian): app01 UP, app02 drained, app03 in maintenance, app04 failing
# its health check (GET /health answers 500).
SHOW_STAT_APP = (
    "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,s"
    "tatus,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,"
    "type,rate,rate_lim,rate_max,check_status,check_code,check_duration,hrsp_1xx,hrsp_2xx,hrsp_3xx,hr"
    "sp_4xx,hrsp_5xx,hrsp_other,hanafail,req_rate,req_rate_max,req_tot,cli_abrt,srv_abrt,comp_in,comp"
    "_out,comp_byp,comp_rsp,lastsess,last_chk,last_agt,qtime,ctime,rtime,ttime,agent_status,agent_cod"
    "e,agent_duration,check_desc,agent_desc,check_rise,check_fall,check_health,agent_rise,agent_fall,"
    "agent_health,addr,cookie,mode,algo,conn_rate,conn_rate_max,conn_tot,intercepted,dcon,dses,wrew,c"
    "onnect,reuse,cache_lookups,cache_hits,srv_icur,src_ilim,qtime_max,ctime_max,rtime_max,ttime_max,"
    "eint,idle_conn_cur,safe_conn_cur,used_conn_cur,need_conn_est,uweight,agg_server_status,agg_serve"
    "r_check_status,agg_check_status,-,ssl_sess,ssl_reused_sess,ssl_failed_handshake,h2_headers_rcvd,"
    "h2_data_rcvd,h2_settings_rcvd,h2_rst_stream_rcvd,h2_goaway_rcvd,h2_detected_conn_protocol_errors"
    ",h2_detected_strm_protocol_errors,h2_rst_stream_resp,h2_goaway_resp,h2_open_connections,h2_backe"
    "nd_open_streams,h2_total_connections,h2_backend_total_streams,h1_open_connections,h1_open_stream"
    "s,h1_total_connections,h1_total_streams,h1_bytes_in,h1_bytes_out,h1_spliced_bytes_in,h1_spliced_"
    "bytes_out,\napp,app01,0,0,0,2,,3,351,387,,0,,0,0,0,0,UP,1,1,0,0,0,368,0,,1,3,1,,3,,2,0,,2,L7OK,20"
    "0,1,0,3,0,0,0,0,,,,3,0,0,,,,,363,,,0,0,2001,2001,,,,Layer7 check passed,,2,2,3,,,,127.0.1.1:8000"
    ",,http,,,,,,,,0,3,0,,,1,,0,0,2001,2001,0,1,0,0,1,1,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,\napp,app02,0,"
    "0,0,1,,1,117,129,,0,,0,0,0,0,DRAIN,1,1,0,0,0,1,5,,1,3,2,,1,,2,0,,1,L7OK,200,1,0,1,0,0,0,0,,,,1,0"
    ",0,,,,,367,,,0,0,2001,2001,,,,Layer7 check passed,,2,2,3,,,,127.0.1.2:8000,,http,,,,,,,,0,1,0,,,"
    "0,,0,0,2001,2001,0,0,0,0,2,1,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,\napp,app03,0,0,0,1,,2,234,338,,0,,0"
    ",1,0,0,MAINT,1,1,0,0,1,1,1,,1,3,3,,2,,2,0,,1,,,,0,1,0,0,0,0,,,,1,0,0,,,,,363,,,0,0,2001,2001,,,,"
    ",,,,,,,,127.0.1.3:8000,,http,,,,,,,,0,2,0,,,0,,0,0,2001,2001,0,0,0,0,2,1,,,,-,0,0,0,,,,,,,,,,,,,"
    ",,,,,,,,,\napp,app04,0,0,0,1,,2,234,258,,0,,0,0,0,0,DOWN,1,1,0,2,1,0,0,,1,3,4,,2,,2,0,,1,L7STS,50"
    "0,1,0,2,0,0,0,0,,,,2,0,0,,,,,363,Internal Server Error,,0,0,2001,2001,,,,Layer7 wrong status,,2,"
    "2,0,,,,127.0.1.4:8000,,http,,,,,,,,0,2,0,,,0,,0,0,2001,2001,0,0,0,0,1,1,,,,-,0,0,0,,,,,,,,,,,,,,"
    ",,,,,,,,\n\n"
)

SHOW_SERVERS_STATE_APP = (
    "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight "
    "srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state sr"
    "v_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_p"
    "ort srv_check_addr srv_agent_addr srv_agent_port\n3 app 1 app01 127.0.1.1 2 0 1 1 369 15 3 3 6 0 "
    "0 0 - 8000 - 0 0 - - 0\n3 app 2 app02 127.0.1.2 2 8 1 1 2 15 3 3 6 0 0 0 - 8000 - 0 0 - - 0\n3 app"
    " 3 app03 127.0.1.3 0 1 1 1 2 15 3 0 14 0 0 0 - 8000 - 0 0 - - 0\n3 app 4 app04 127.0.1.4 0 0 1 1 "
    "1 17 2 0 6 0 0 0 - 8000 - 0 0 - - 0\n\n"
)


# The transcripts' servers as each view reads them: `show stat`'s status, `show servers state`'s operational
# state and admin flags, and the admin state the client makes of both.
CAPTURED = {  # server: (status, op_state, admin_flags, admin_state)
    "app01": ("UP", 2, 0, "ready"),
    "app02": ("DRAIN", 2, 8, "drain"),
    "app03": ("MAINT", 0, 1, "maint"),
    "app04": ("DOWN", 0, 0, "ready"),
}


@pytest.fixture
def api() -> Iterator[FakeRuntimeApi]:
    with FakeRuntimeApi({"app": ["app01", "app02"]}) as fake:
        yield fake


@pytest.fixture
def real() -> Iterator[FakeRuntimeApi]:
    canned = {"show stat app 4 -1": SHOW_STAT_APP, "show servers state app": SHOW_SERVERS_STATE_APP}
    with FakeRuntimeApi({"app": ["app01"]}, canned=canned) as fake:
        yield fake


def test_show_stat_parses_the_servers_of_a_real_answer(real: FakeRuntimeApi) -> None:
    stats = {row.server: row for row in RuntimeApiClient(real.address).show_stat("app")}

    assert {name: row.status for name, row in stats.items()} == {
        name: status for name, (status, *_) in CAPTURED.items()
    }
    assert stats["app04"].check_status == "L7STS"
    assert stats["app04"].check_code == "500"
    assert stats["app04"].check_description == "Layer7 wrong status"
    assert stats["app04"].last_check == "Internal Server Error"
    assert stats["app01"].check_duration_ms == 1
    assert stats["app03"].check_duration_ms is None  # no check result while in maintenance
    assert (stats["app01"].scur, stats["app01"].qcur, stats["app01"].backup) == (0, 0, False)


def test_show_servers_state_parses_admin_flags_and_weights(real: FakeRuntimeApi) -> None:
    states = {row.server: row for row in RuntimeApiClient(real.address).show_servers_state("app")}

    assert {name: (row.op_state, row.admin_flags) for name, row in states.items()} == {
        name: (op_state, admin_flags) for name, (_, op_state, admin_flags, _) in CAPTURED.items()
    }
    assert (states["app01"].weight, states["app01"].initial_weight, states["app01"].port) == (1, 1, 8000)
    assert states["app03"].check_state == 14  # configured, enabled, paused by maintenance


def test_servers_joins_both_views(real: FakeRuntimeApi) -> None:
    servers = {s.server: s for s in RuntimeApiClient(real.address).servers("app")}

    assert {name: s.admin_state for name, s in servers.items()} == {
        name: admin_state for name, (*_, admin_state) in CAPTURED.items()
    }
    assert [name for name, s in servers.items() if s.up] == ["app01"]
    assert [name for name, s in servers.items() if s.serving] == ["app01"]
    assert servers["app03"].check_enabled  # paused, still configured
    assert servers["app02"].address == "127.0.1.2:8000"


def test_show_stat_answers_no_such_proxy_as_not_found(api: FakeRuntimeApi) -> None:
    with pytest.raises(NotFoundError, match="No such proxy"):
        RuntimeApiClient(api.address).show_stat("nosuch")


def test_set_commands_are_sent_as_haproxy_spells_them(api: FakeRuntimeApi) -> None:
    client = RuntimeApiClient(api.address)
    client.set_server_state("app", "app01", "drain")
    client.set_server_health("app", "app01", "down")
    client.set_server_weight("app", "app01", Weight.parse("50%"))
    client.shutdown_sessions("app", "app01")

    assert api.received == [
        b"set server app/app01 state drain\n",
        b"set server app/app01 health down\n",
        b"set server app/app01 weight 50%\n",
        b"shutdown sessions server app/app01\n",
    ]


@pytest.mark.parametrize(
    ("backend", "server", "error"),
    [("app", "app09", "No such server"), ("nosuch", "app01", "No such backend")],
)
def test_unknown_names_answered_by_haproxy_raise_not_found(
    api: FakeRuntimeApi, backend: str, server: str, error: str
) -> None:
    with pytest.raises(NotFoundError, match=error):
        RuntimeApiClient(api.address).set_server_state(backend, server, "drain")


def test_unexpected_answer_raises_runtime_api_error_with_the_answer(api: FakeRuntimeApi) -> None:
    api.canned["set server app/app01 state drain"] = "Something odd.\n\n"
    with pytest.raises(RuntimeApiError, match="Something odd") as caught:
        RuntimeApiClient(api.address).set_server_state("app", "app01", "drain")
    assert caught.value.details["answer"] == "Something odd."


@pytest.mark.parametrize("level", ["operator", "user"])
def test_require_admin_refuses_a_lower_level_socket(level: str) -> None:
    with FakeRuntimeApi({"app": ["app01"]}, level=level) as api:
        with pytest.raises(PermissionDeniedError, match=f"level '{level}'.*level admin"):
            RuntimeApiClient(api.address).require_admin()
        assert api.commands == ["show cli level"]


def test_permission_denied_answer_is_typed() -> None:
    with (
        FakeRuntimeApi({"app": ["app01"]}, level="operator") as api,
        pytest.raises(PermissionDeniedError, match="Permission denied"),
    ):
        RuntimeApiClient(api.address).set_server_state("app", "app01", "maint")


def test_tcp_transport_works() -> None:
    with FakeRuntimeApi({"app": ["app01"]}, tcp=True) as api:
        assert api.address.startswith("tcp://127.0.0.1:")
        client = RuntimeApiClient(api.address)
        assert client.cli_level() == "admin"
        assert [s.server for s in client.servers()] == ["app01"]


@pytest.mark.parametrize(
    "bad",
    ["app01;reboot", "app01\nshow stat", "app 01", "app01#", "app\x00", "app/01", "", "app\x7f", "é"],
)
def test_a_bad_server_name_is_refused_before_anything_is_sent(api: FakeRuntimeApi, bad: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        RuntimeApiClient(api.address).set_server_state("app", bad, "drain")
    assert repr(bad) in caught.value.message or (not bad and "empty" in caught.value.message)
    assert api.received == []


@pytest.mark.parametrize("command", ["show stat; set server app/app01 state maint", "show stat\nhelp", "a#b"])
def test_execute_refuses_a_command_haproxy_would_split(api: FakeRuntimeApi, command: str) -> None:
    with pytest.raises(InvalidInputError, match="is refused"):
        RuntimeApiClient(api.address).execute(command)
    assert api.received == []


def test_an_absent_unix_socket_fails_naming_it() -> None:
    with pytest.raises(ConnectionFailedError, match=r"/nonexistent/admin\.sock"):
        RuntimeApiClient("/nonexistent/admin.sock").cli_level()


def test_a_closed_tcp_port_fails_naming_it() -> None:
    with socket.socket() as probe:  # a port nobody listens on: bound, never listened
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        with pytest.raises(ConnectionFailedError, match=f"tcp://127.0.0.1:{port}"):
            RuntimeApiClient(f"tcp://127.0.0.1:{port}", timeout=1).cli_level()


def test_a_silent_peer_times_out_within_the_read_timeout() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        accepted: list[socket.socket] = []
        threading.Thread(target=lambda: accepted.append(listener.accept()[0]), daemon=True).start()
        started = time.monotonic()
        with pytest.raises(ConnectionFailedError, match="stopped answering"):
            RuntimeApiClient(f"tcp://127.0.0.1:{listener.getsockname()[1]}", timeout=0.3).cli_level()
        assert time.monotonic() - started < 2
        for conn in accepted:
            conn.close()


@pytest.mark.parametrize(
    ("text", "path", "host", "port"),
    [
        ("/run/haproxy/admin.sock", "/run/haproxy/admin.sock", "", 0),
        ("unix:///run/haproxy/admin.sock", "/run/haproxy/admin.sock", "", 0),
        ("tcp://127.0.0.1:9999", "", "127.0.0.1", 9999),
        ("tcp://[::1]:9999", "", "::1", 9999),
    ],
)
def test_addresses_parse(text: str, path: str, host: str, port: int) -> None:
    address = RuntimeApiAddress.parse(text)
    assert (address.path, address.host, address.port) == (path, host, port)


@pytest.mark.parametrize("text", ["", "tcp://127.0.0.1", "tcp://:99", "tcp://h:0", "http://x", "/a\nb", None])
def test_bad_addresses_are_refused(text: object) -> None:
    with pytest.raises(InvalidInputError, match="socket"):
        RuntimeApiAddress.parse(text)


@pytest.mark.parametrize(
    ("raw", "initial", "absolute"),
    [(10, 50, 10), ("10", 50, 10), ("33%", 50, 16), ("150%", 50, 75), ("50%", 1, 0), ("200%", 200, 256)],
)
def test_weights_resolve_as_haproxy_computes_them(raw: object, initial: int, absolute: int) -> None:
    # 33% of 50 is 16 and 50% of 1 is 0 on HAProxy 2.6: it rounds down.
    assert Weight.parse(raw).resolve(initial) == absolute


@pytest.mark.parametrize("raw", ["257", "-1", "ten", "10%%", True, None, 1.5])
def test_bad_weights_are_refused(raw: object) -> None:
    with pytest.raises(InvalidInputError, match="weight"):
        Weight.parse(raw)


def test_an_haproxy_without_show_cli_level_is_trusted_until_it_refuses(api: FakeRuntimeApi) -> None:
    api.canned["show cli level"] = "Unknown command. Please enter one of the following commands only :\n\n"
    RuntimeApiClient(api.address).require_admin()
    assert api.commands == ["show cli level"]


def test_a_running_check_keeps_its_last_status_but_has_no_code() -> None:
    row = {"pxname": "app", "svname": "app01", "status": "UP", "check_status": "* L7OK", "check_code": "0"}
    stat = ServerStat.from_row(row)
    assert (stat.check_status, stat.check_code, stat.check_in_progress) == ("L7OK", "", True)
    done = ServerStat.from_row({**row, "check_status": "L7OK", "check_code": "200"})
    assert (done.check_status, done.check_code, done.check_in_progress) == ("L7OK", "200", False)


def test_one_server_of_many_is_read_alone() -> None:
    names = [f"app{n:02d}" for n in range(1, 51)]
    with FakeRuntimeApi({"app": names}) as fake:
        snapshots = RuntimeApiClient(fake.address).servers("app", "app07")
        assert [(s.backend, s.server) for s in snapshots] == [("app", "app07")]
        assert "show stat app 4 7" in fake.commands  # its own row, not fifty
        assert [
            (s.server, s.server_id) for s in RuntimeApiClient(fake.address).show_servers_state(server="app50")
        ] == [("app50", 50)]
