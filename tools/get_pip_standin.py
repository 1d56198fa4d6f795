"""Stand-in for the get-pip.py that ansible-test downloads to bootstrap pip in its sanity venvs.

That download host is outside the package registries this project may reach; PyPI is not. This runs
the pip wheel that CPython bundles in ensurepip to install what ansible-test asks for (pip==X, from PyPI).
tools/sanity.sh copies it to ansible-test's cache path, where ansible-test looks before downloading.
"""

from __future__ import annotations

import ensurepip
import runpy
import sys
from pathlib import Path

bundled = sorted((Path(ensurepip.__file__).parent / "_bundled").glob("pip-*.whl"))
if not bundled:
    sys.exit("get-pip stand-in: this Python has no bundled pip wheel in ensurepip")
sys.path.insert(0, str(bundled[-1]))
# --no-setuptools and --no-wheel are get-pip's own options: it installs those two only when asked.
requested = [arg for arg in sys.argv[1:] if arg not in ("--no-setuptools", "--no-wheel")]
sys.argv = ["pip", "install", "--disable-pip-version-check", *requested]
runpy.run_module("pip", run_name="__main__", alter_sys=True)
