# Private to this collection: not a public API, may change without notice.
"""lb_member_info: every server of every backend (or those asked for), as each balancer sees it."""

from __future__ import annotations

import typing as t

from ansible_collections.fleet.rollout.plugins.module_utils._errors import NotFoundError
from ansible_collections.fleet.rollout.plugins.module_utils._haproxy import RuntimeApiClient
from ansible_collections.fleet.rollout.plugins.module_utils._haproxy_address import RuntimeApiAddress
from ansible_collections.fleet.rollout.plugins.module_utils._validate import validate_names


class MemberReport:
    """Every server of every backend (or those asked for) on each balancer, as plain dicts."""

    def __init__(
        self,
        balancers: t.Sequence[RuntimeApiClient],
        backends: t.Sequence[str] = (),
        servers: t.Sequence[str] = (),
    ) -> None:
        self.balancers = balancers
        self.backends = backends
        self.servers = servers

    def collect(self) -> list[dict[str, t.Any]]:
        validate_names("backend name", self.backends)
        validate_names("server name", self.servers)
        for balancer in self.balancers:
            RuntimeApiAddress.parse(balancer.address)
        rows: list[dict[str, t.Any]] = []
        for balancer in self.balancers:
            seen = balancer.servers()
            missing_backends = [b for b in self.backends if b not in {s.backend for s in seen}]
            if missing_backends:
                raise NotFoundError(
                    f"no backend {', '.join(map(repr, missing_backends))} on {balancer.address}",
                    socket=balancer.address,
                    missing=missing_backends,
                )
            wanted = [s for s in seen if not self.backends or s.backend in self.backends]
            missing_servers = [n for n in self.servers if n not in {s.server for s in wanted}]
            if missing_servers:
                raise NotFoundError(
                    f"no server {', '.join(map(repr, missing_servers))} in "
                    f"{'backend ' + ', '.join(self.backends) if self.backends else 'any backend'} "
                    f"on {balancer.address}",
                    socket=balancer.address,
                    missing=missing_servers,
                )
            rows.extend(
                {"balancer": balancer.address, **s.as_dict()}
                for s in wanted
                if not self.servers or s.server in self.servers
            )
        return rows
