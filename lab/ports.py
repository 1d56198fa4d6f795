"""Where a lab lives: its block of loopback ports and its short run directory, claimed in one place.

Every lab claims a block of BLOCK_SIZE consecutive ports by creating ``RUN_ROOT/<base>`` atomically
(mkdir). Unix sockets live there too, since a pytest tmp path can be longer than a socket path may be.
A claim whose owner is gone (its state file removed, or no process of it alive) is taken over, so a
lab left behind by a killed test never blocks the next one.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path

RUN_ROOT = Path(os.environ.get("FLEET_LAB_RUN_ROOT", "/tmp/fleet-rollout-lab"))
BLOCK_SIZE = 20
FIRST_BASE = 21000
LAST_BASE = 29000
MAX_BALANCERS = 4
STARTING_GRACE_SECONDS = 120.0


@dataclass(frozen=True)
class PortBlock:
    """The ports of one lab, all derived from ``base``."""

    base: int

    def frontend(self, balancer_index: int) -> int:
        return self.base + 2 * balancer_index

    def admin(self, balancer_index: int) -> int:
        return self.base + 2 * balancer_index + 1

    @property
    def app(self) -> int:
        """Every app host listens on this port, each on its own 127.0.1.N address."""
        return self.base + 2 * MAX_BALANCERS

    @property
    def ssh(self) -> int:
        return self.base + 2 * MAX_BALANCERS + 1

    @property
    def nginx(self) -> int:
        return self.base + 2 * MAX_BALANCERS + 2

    def metrics(self, balancer_index: int) -> int:
        """HAProxy's built-in Prometheus exporter of balancer number balancer_index (0-based)."""
        return self.base + 2 * MAX_BALANCERS + 3 + balancer_index

    @property
    def prometheus(self) -> int:
        """The lab's Prometheus server, when it runs one."""
        return self.base + 3 * MAX_BALANCERS + 3

    @property
    def run_dir(self) -> Path:
        return RUN_ROOT / str(self.base)

    def all_ports(self) -> range:
        return range(self.base, self.base + BLOCK_SIZE)


def host_address(index: int) -> str:
    """Address of app host number index (1-based): 127.0.1.1, 127.0.1.2, ..."""
    if not 1 <= index <= 250:
        raise ValueError(f"host index {index} out of range 1..250")
    return f"127.0.1.{index}"


def port_is_free(address: str, port: int) -> bool:
    """True when nothing listens on address:port (connections in TIME_WAIT do not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As every server here does; it still refuses a port something is listening on.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address, port))
        except OSError:
            return False
    return True


def block_is_free(block: PortBlock, hosts: int) -> bool:
    addresses = ["127.0.0.1"] + [host_address(i) for i in range(1, hosts + 1)]
    return all(port_is_free("127.0.0.1", p) for p in block.all_ports()) and all(
        port_is_free(a, block.app) for a in addresses
    )


def claim_owner_alive(run_dir: Path) -> bool:
    """A claim is alive while its owner's state file exists and names a live process."""
    try:
        owner_file = run_dir / "owner"
        if time.time() - owner_file.stat().st_mtime < STARTING_GRACE_SECONDS:
            return True  # claimed moments ago; its lab.json may not be written yet
        owner = Path(owner_file.read_text().strip())
        state_file = owner / "lab.json"
        state = json.loads(state_file.read_text())
        age = time.time() - state_file.stat().st_mtime
    except (FileNotFoundError, NotADirectoryError, ValueError):
        return False  # claims are made under a lock, so one without a readable owner is debris
    if state.get("starting") and age < STARTING_GRACE_SECONDS:
        return True
    return any(pid_alive(pid) for pid in state.get("pids", []))


def pid_alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def claim_block(state_dir: Path, hosts: int, base: int | None = None) -> PortBlock:
    """Claim a free block (or exactly ``base``) for the lab whose state lives in state_dir."""
    RUN_ROOT.mkdir(parents=True, exist_ok=True)
    # One claimer at a time, so two labs never both take over the same stale block.
    with (RUN_ROOT / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _claim_locked(state_dir, hosts, base)


def _claim_locked(state_dir: Path, hosts: int, base: int | None) -> PortBlock:
    candidates = [base] if base is not None else range(FIRST_BASE, LAST_BASE, BLOCK_SIZE)
    for candidate in candidates:
        block = PortBlock(candidate)
        if block.run_dir.exists() and not claim_owner_alive(block.run_dir):
            shutil.rmtree(block.run_dir, ignore_errors=True)
        try:
            block.run_dir.mkdir()
        except FileExistsError:
            continue
        if not block_is_free(block, hosts):
            shutil.rmtree(block.run_dir, ignore_errors=True)
            continue
        (block.run_dir / "owner").write_text(f"{state_dir.resolve()}\n")
        return block
    wanted = f"port {base}" if base is not None else f"ports {FIRST_BASE}-{LAST_BASE}"
    raise RuntimeError(f"no free block of {BLOCK_SIZE} loopback ports at {wanted}")


def release_block(block: PortBlock) -> None:
    shutil.rmtree(block.run_dir, ignore_errors=True)
