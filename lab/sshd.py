"""A real OpenSSH server for the lab (Debian's openssh-server), so playbooks can reach hosts over SSH.

One sshd process listens on every app host's address (127.0.1.N) on the lab's ssh port, with its own
host key and a key pair made for this lab only; it runs as the current user's server for that user.
"""

from __future__ import annotations

import getpass
import subprocess
import time
from pathlib import Path

from lab.service import accepts_connections, start_detached

SSHD = "/usr/sbin/sshd"
SSH_KEYGEN = "/usr/bin/ssh-keygen"


def client_key(state_dir: Path) -> Path:
    return state_dir / "ssh" / "id_ed25519"


def start_sshd(state_dir: Path, addresses: list[str], port: int) -> int:
    """Write keys and config, start sshd in the foreground of its own session, return its pid."""
    ssh_dir = state_dir / "ssh"
    ssh_dir.mkdir(parents=True, exist_ok=True)
    host_key, key = ssh_dir / "host_ed25519", client_key(state_dir)
    for path in (host_key, key):
        if not path.exists():
            subprocess.run([SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    authorized = ssh_dir / "authorized_keys"
    authorized.write_text(key.with_suffix(".pub").read_text())
    authorized.chmod(0o600)
    config = ssh_dir / "sshd_config"
    listen = "".join(f"ListenAddress {address}:{port}\n" for address in addresses)
    config.write_text(
        listen
        + f"HostKey {host_key}\n"
        + f"AuthorizedKeysFile {authorized}\n"
        + f"PidFile {ssh_dir / 'sshd.pid'}\n"
        + f"AllowUsers {getpass.getuser()}\n"
        + "PasswordAuthentication no\n"
        + "KbdInteractiveAuthentication no\n"
        + "PermitRootLogin prohibit-password\n"
        + "UsePAM no\n"
        + "StrictModes no\n"
        + "MaxStartups 100:30:200\n"
        + "MaxSessions 100\n"
        + "Subsystem sftp internal-sftp\n"
        + "LogLevel ERROR\n"
    )
    # sshd insists on its privilege-separation directory even when it runs unprivileged tasks only.
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    log = ssh_dir / "sshd.log"
    process = start_detached([SSHD, "-D", "-e", "-f", str(config)], log)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"sshd exited with {process.returncode}: {log.read_text()[-500:]}")
        if accepts_connections(addresses[0], port):
            return process.pid
        time.sleep(0.02)
    raise RuntimeError(f"sshd did not listen on {addresses[0]}:{port} in time")
