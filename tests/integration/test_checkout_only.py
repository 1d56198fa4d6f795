"""A test run leaves nothing outside the checkout.

`make lint`'s ansible-lint once installed a copy of this collection into ~/.ansible/collections, which
then shadowed `ansible-galaxy collection install -p DIR` of the same version ("Nothing to do").
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.support import ROOT

# Where the tools would write if make did not say otherwise: all of it under HOME.
CALLERS_SETTINGS = (
    "ANSIBLE_HOME",
    "ANSIBLE_COLLECTIONS_PATH",
    "XDG_CACHE_HOME",
    "XDG_CONFIG_HOME",
    "XDG_DATA_HOME",
    "XDG_STATE_HOME",
    "MAKEFLAGS",
    "MAKELEVEL",
)


@pytest.mark.slow
def test_make_ansible_lint_writes_nothing_in_home(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = {name: value for name, value in os.environ.items() if name not in CALLERS_SETTINGS}
    env.update(HOME=str(home), NO_COLOR="1")

    # (-o setup: the venvs are there already; setup would look for pyenv's Pythons under HOME.)
    done = subprocess.run(
        ["make", "--no-print-directory", "-o", "setup", "ansible-lint"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    output = done.stdout + done.stderr
    # Whether the lint passes is `make lint`'s business; here ansible-lint must have run to its end.
    assert re.search(r"(Passed|Failed): \d+ failure", output), output[-3000:]
    left = sorted({"/".join(path.relative_to(home).parts[:3]) for path in home.rglob("*")})
    assert left == [], f"make ansible-lint wrote outside the checkout: {', '.join(left)}"
