# Private to this collection: not a public API, may change without notice.
"""Where an HAProxy runtime API listens (a unix socket path, ``unix://`` or ``tcp://host:port``), checked
before anything connects, and how to connect to it."""

from __future__ import annotations

import socket
import typing as t
from dataclasses import dataclass

from ansible_collections.fleet.rollout.plugins.module_utils._errors import (
    ConnectionFailedError,
    InvalidInputError,
    PermissionDeniedError,
)
from ansible_collections.fleet.rollout.plugins.module_utils._validate import (
    describe_character,
    first_control_character,
    split_host_port,
)


@dataclass(frozen=True)
class RuntimeApiAddress:
    """Where a runtime API listens: ``/path/to/admin.sock``, ``unix:///path`` or ``tcp://host:port``."""

    text: str
    path: str = ""
    host: str = ""
    port: int = 0

    @classmethod
    def parse(cls, text: t.Any) -> RuntimeApiAddress:
        if not isinstance(text, str) or not text.strip():
            raise InvalidInputError(f"socket must be a path or tcp://host:port, got {text!r}", socket=text)
        bad = first_control_character(text)
        if bad is not None:
            raise InvalidInputError(
                f"socket {text!r} is refused: it contains {describe_character(bad)}", socket=text
            )
        if text.startswith("tcp://"):
            host_port = split_host_port(text[len("tcp://") :])
            if host_port is None:
                raise InvalidInputError(f"socket {text!r} is not of the form tcp://host:port", socket=text)
            return cls(text, host=host_port[0], port=host_port[1])
        path = text[len("unix://") :] if text.startswith("unix://") else text
        if "://" in path or not path:
            raise InvalidInputError(
                f"socket {text!r} is neither a unix socket path nor tcp://host:port", socket=text
            )
        return cls(text, path=path)

    def connect(self, timeout: float) -> socket.socket:
        """An open connection; ConnectionFailedError/PermissionDeniedError name the address."""
        try:
            if self.path:
                conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                conn.settimeout(timeout)
                try:
                    conn.connect(self.path)
                except OSError:
                    conn.close()
                    raise
                return conn
            return socket.create_connection((self.host, self.port), timeout=timeout)
        except PermissionError as error:
            raise PermissionDeniedError(
                f"no permission to open the HAProxy runtime API socket {self.text}: {error.strerror}",
                socket=self.text,
            ) from error
        except OSError as error:
            reason = error.strerror or str(error) or type(error).__name__
            raise ConnectionFailedError(
                f"cannot reach the HAProxy runtime API at {self.text}: {reason}", socket=self.text
            ) from error
