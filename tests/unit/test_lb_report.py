"""MemberReport: lb_member_info's logic."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from ansible_collections.fleet.rollout.plugins.module_utils._errors import InvalidInputError, NotFoundError
from ansible_collections.fleet.rollout.plugins.module_utils._haproxy import RuntimeApiClient
from ansible_collections.fleet.rollout.plugins.module_utils._member_report import MemberReport

from tests.fakes.lb_fake_runtime import FORCED_MAINT, FakeRuntimeApi


@pytest.fixture
def api() -> Iterator[FakeRuntimeApi]:
    with FakeRuntimeApi({"app": ["app01", "app02"], "api": ["app01"]}, level="user") as fake:
        yield fake


def collect(api: FakeRuntimeApi, **filters: Any) -> list[dict[str, Any]]:
    return MemberReport([RuntimeApiClient(api.address)], **filters).collect()


def test_every_server_of_every_backend_with_its_state(api: FakeRuntimeApi) -> None:
    api.server("app02").admin = FORCED_MAINT
    rows = collect(api)

    assert [(r["backend"], r["server"], r["status"], r["admin_state"]) for r in rows] == [
        ("app", "app01", "UP", "ready"),
        ("app", "app02", "MAINT", "maint"),
        ("api", "app01", "UP", "ready"),
    ]
    assert rows[0]["balancer"] == api.address
    assert {"weight", "scur", "qcur", "check_status", "check_duration_ms", "hrsp_5xx"} <= set(rows[0])


def test_filters(api: FakeRuntimeApi) -> None:
    assert [(r["backend"], r["server"]) for r in collect(api, servers=["app01"])] == [
        ("app", "app01"),
        ("api", "app01"),
    ]
    assert [(r["backend"], r["server"]) for r in collect(api, backends=["api"])] == [("api", "app01")]


@pytest.mark.parametrize(
    ("filters", "match"),
    [
        ({"servers": ["app09"]}, "no server 'app09' in any backend"),
        ({"backends": ["api"], "servers": ["app02"]}, "no server 'app02' in backend api"),
        ({"backends": ["web"]}, "no backend 'web'"),
    ],
)
def test_unknown_names_fail(api: FakeRuntimeApi, filters: dict[str, Any], match: str) -> None:
    with pytest.raises(NotFoundError, match=match):
        collect(api, **filters)


def test_bad_names_fail_before_connecting(api: FakeRuntimeApi) -> None:
    with pytest.raises(InvalidInputError, match="app01#"):
        collect(api, servers=["app01#"])
    assert api.received == []
