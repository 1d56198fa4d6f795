"""Shared pytest fixtures. Import paths (the repo root, and .tmp/collections where this checkout is
the collection fleet.rollout) come from pyproject.toml's pytest `pythonpath`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.fleet import Lab


@pytest.fixture
def lab(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Lab]:
    """A running lab, taken down after the test even when it fails. Size it with
    ``@pytest.mark.lab(hosts=4, balancers=2)``; ``prometheus=True`` runs the lab's Prometheus too."""
    marker = request.node.get_closest_marker("lab")
    options = dict(marker.kwargs) if marker else {}
    the_lab = Lab(tmp_path / "lab")
    the_lab.up(
        hosts=options.get("hosts", 3),
        balancers=options.get("balancers", 1),
        prometheus=options.get("prometheus", False),
    )
    try:
        yield the_lab
    finally:
        the_lab.down()
