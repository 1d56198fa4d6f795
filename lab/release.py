"""Release artifacts for the lab's sample app: a tar.gz of app.py and the release's behaviour."""

from __future__ import annotations

import io
import json
import tarfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

APP_SOURCE = Path(__file__).resolve().parent / "app.py"


@dataclass(frozen=True)
class ReleaseBehaviour:
    """How a release behaves once deployed; the defaults make a good release."""

    warmup: float = 0.0
    health_fail: bool = False
    error_rate: float = 0.0
    latency: float = 0.0
    crash: bool = False
    fail_hosts: tuple[str, ...] = field(default_factory=tuple)
    # hosts that answer error_rate of their requests with 500; empty: every host does
    error_hosts: tuple[str, ...] = field(default_factory=tuple)

    def validate(self) -> None:
        if not 0.0 <= self.error_rate <= 1.0:
            raise ValueError(f"error_rate must be between 0 and 1, got {self.error_rate}")
        for name, value in (("warmup", self.warmup), ("latency", self.latency)):
            if value < 0:
                raise ValueError(f"{name} must not be negative, got {value}")


def release_manifest(version: str, behaviour: ReleaseBehaviour) -> dict[str, object]:
    manifest: dict[str, object] = {"version": version, **asdict(behaviour)}
    manifest["fail_hosts"] = list(behaviour.fail_hosts)
    manifest["error_hosts"] = list(behaviour.error_hosts)
    return manifest


def build_release(version: str, out_dir: Path, behaviour: ReleaseBehaviour | None = None) -> Path:
    """Write ``app-<version>.tar.gz`` into out_dir and return its path; same input, same bytes."""
    if not version or any(c in version for c in "/\\ ;\t\n") or version in (".", ".."):
        raise ValueError(f"invalid release version {version!r}")
    behaviour = behaviour or ReleaseBehaviour()
    behaviour.validate()
    out_dir.mkdir(parents=True, exist_ok=True)
    artifact = out_dir / f"app-{version}.tar.gz"
    files = {
        "app.py": APP_SOURCE.read_bytes(),
        "release.json": (json.dumps(release_manifest(version, behaviour), indent=2) + "\n").encode(),
    }
    buffer = io.BytesIO()
    # mtime=0 in both the gzip header and the members keeps the artifact's checksum reproducible.
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=6) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data))
    artifact.write_bytes(normalise_gzip_mtime(buffer.getvalue()))
    return artifact


def normalise_gzip_mtime(data: bytes) -> bytes:
    """Zero the gzip header's timestamp (bytes 4-7), which tarfile sets to now."""
    return data[:4] + b"\0\0\0\0" + data[8:]
