# Private to this collection: not a public API, may change without notice.
"""The one reading of "N or N%": window sizes and failure budgets (hosts), capacity floors (servers) and
HAProxy weights all take a whole number or a percentage, written the same way everywhere."""

from __future__ import annotations

import re
import typing as t
from dataclasses import dataclass

# ASCII digits only: Python's \d and isdigit() also take other scripts' digits (and '²', which int() refuses)
COUNT_OR_PERCENT = re.compile(r"\s*([0-9]+)\s*(%?)\s*")


@dataclass(frozen=True)
class CountOrPercent:
    """A whole number, or a percentage of something counted later."""

    value: int
    percent: bool

    @classmethod
    def read(cls, raw: t.Any) -> t.Optional[CountOrPercent]:
        """An int (never a bool, which Python counts as one) or text such as ``3``, ``25%`` or ``" 25 %"``;
        None for anything else, negative numbers included. Each user checks its own range."""
        if isinstance(raw, bool):
            return None
        if isinstance(raw, int):
            return cls(raw, False) if raw >= 0 else None
        match = COUNT_OR_PERCENT.fullmatch(raw) if isinstance(raw, str) else None
        if match is None:
            return None
        return cls(int(match.group(1)), bool(match.group(2)))

    def share_of(self, total: int, *, round_up: bool = False) -> int:
        """The count, or the percentage of ``total`` rounded down (or up)."""
        if not self.percent:
            return self.value
        return -(-total * self.value // 100) if round_up else total * self.value // 100

    def __str__(self) -> str:
        return f"{self.value}%" if self.percent else str(self.value)
