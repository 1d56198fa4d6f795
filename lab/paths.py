"""Where the lab keeps a thing's files: below the thing's own state directory."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, overload


class HasStateDir(Protocol):
    @property
    def state_dir(self) -> Path: ...


class InStateDir:
    """A class attribute naming one file of its instances' ``state_dir``: ``log = InStateDir("haproxy.log")``
    makes ``spec.log`` the path ``spec.state_dir / "haproxy.log"``."""

    def __init__(self, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, instance: None, owner: type) -> InStateDir: ...

    @overload
    def __get__(self, instance: HasStateDir, owner: type) -> Path: ...

    def __get__(self, instance: HasStateDir | None, owner: type) -> Path | InStateDir:
        return self if instance is None else instance.state_dir / self.name
