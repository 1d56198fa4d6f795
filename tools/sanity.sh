#!/usr/bin/env bash
# ansible-test sanity on the collection as built and installed (the proof that both work).
#
# The install sits outside this git checkout: inside it, ansible-test would list files with git and
# skip the ignored install directory. ansible-test's sanity venvs bootstrap pip from a download host
# this project cannot reach; tools/get_pip_standin.py does the same job from PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."
pip_version=$(grep -oP "pip='\K[0-9.]+" .venv/lib/python3*/site-packages/ansible_test/_internal/python_requirements.py)
cache=~/.ansible/test/cache/get_pip_${pip_version//./_}.py
if [ ! -s "$cache" ]; then
  mkdir -p "$(dirname "$cache")"
  cp tools/get_pip_standin.py "$cache"
fi

dir=$(mktemp -d /tmp/fleet-rollout-sanity.XXXXXX)
trap 'rm -rf "$dir"' EXIT
ANSIBLE_COLLECTIONS_PATH=$dir .venv/bin/ansible-galaxy collection install --force -p "$dir" \
  .tmp/build/fleet-rollout-*.tar.gz >/dev/null
cd "$dir/ansible_collections/fleet/rollout"
PATH=$OLDPWD/.venv/bin:$PATH ANSIBLE_COLLECTIONS_PATH=$dir \
  ansible-test sanity --venv --python 3.11 --color no "$@"
