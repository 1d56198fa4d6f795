#!/usr/bin/env bash
# ansible-test sanity on the collection as built and installed (the proof that both work): every test
# with the controller's Python 3.11, and the import and compile tests on every Python a managed host may
# have, 3.7 to 3.13. ansible-core 2.19's ansible-test (.venv) covers 3.8-3.13; only 2.17's
# (.venv-core-2.17, the oldest supported core) still supports 3.7 targets. Each Python must be on this
# machine (pyenv's are found without being selected): a missing one fails the run, it is not skipped.
#
# The install sits outside this git checkout: inside it, ansible-test would list files with git and
# skip the ignored install directory. ansible-test's sanity venvs bootstrap pip from a download host
# this project cannot reach; tools/get_pip_standin.py does the same job from PyPI.
#
# ansible-test keeps its venvs and that bootstrap script in ~/.ansible/test, a path no option moves, so
# it runs with HOME in the checkout's .tmp/ (pip's cache goes there too; pip still reads the user's config).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
newest_targets=(3.8 3.9 3.10 3.11 3.12 3.13)  # by .venv's ansible-core (2.19)
oldest_targets=(3.7)                          # by .venv-core-2.17's

# python_for X.Y: the executable of a pythonX.Y that runs (not a pyenv shim, which needs pyenv's HOME).
# pyenv's shims on PATH answer only for the versions pyenv has selected: its installed ones count too.
python_for() {
  local candidate
  for candidate in "$(command -v "python$1" || true)" "${PYENV_ROOT:-$HOME/.pyenv}/versions/$1".*/bin/"python$1"; do
    if [ -n "$candidate" ] && "$candidate" -c "import sys; print(sys.executable)" 2>/dev/null; then
      return 0
    fi
  done
  return 1
}

dir=$(mktemp -d /tmp/fleet-rollout-sanity.XXXXXX)
trap 'rm -rf "$dir"' EXIT
# ansible-test finds a target's Python as pythonX.Y on PATH: this directory holds one of each.
mkdir "$dir/bin"
missing=()
for version in "${oldest_targets[@]}" "${newest_targets[@]}"; do
  if python=$(python_for "$version"); then
    ln -s "$python" "$dir/bin/python$version"
  else
    missing+=("$version")
  fi
done
if ((${#missing[@]})); then
  echo "sanity: no Python ${missing[*]} on this machine; the import and compile tests need every target" \
    "Python from 3.7 to 3.13 (e.g. \`pyenv install ${missing[0]}\`)" >&2
  exit 1
fi
if [ ! -x .venv-core-2.17/bin/ansible-test ]; then
  echo "sanity: no .venv-core-2.17 (its ansible-test tests Python 3.7): run \`make setup\`" >&2
  exit 1
fi

export XDG_CONFIG_HOME=${XDG_CONFIG_HOME:-$HOME/.config}
export ANSIBLE_HOME=${ANSIBLE_HOME:-$root/.tmp/ansible-home}
export HOME=$root/.tmp/home
for venv in .venv .venv-core-2.17; do
  pip_version=$(grep -oP "pip='\K[0-9.]+" $venv/lib/python3*/site-packages/ansible_test/_internal/python_requirements.py)
  cache=~/.ansible/test/cache/get_pip_${pip_version//./_}.py
  if [ ! -s "$cache" ]; then
    mkdir -p "$(dirname "$cache")"
    cp tools/get_pip_standin.py "$cache"
  fi
done

ANSIBLE_COLLECTIONS_PATH=$dir .venv/bin/ansible-galaxy collection install --force -p "$dir" \
  .tmp/build/fleet-rollout-*.tar.gz >/dev/null
cd "$dir/ansible_collections/fleet/rollout"
export ANSIBLE_COLLECTIONS_PATH=$dir

# --target-python may be given once per version. The full run's controller is a venv, as --venv made it;
# the 3.7 run's is .venv-core-2.17's own Python (a venv for it would be made anew each run: ~8 s more).
status=0
targets=()
for version in "${oldest_targets[@]}"; do targets+=(--target-python "$version"); done
echo "sanity: import and compile on Python ${oldest_targets[*]} (ansible-core 2.17)"
PATH=$root/.venv-core-2.17/bin:$dir/bin:$PATH ansible-test sanity --test import --test compile \
  --controller origin:python=3.11 "${targets[@]}" --color no || status=1
targets=()
for version in "${newest_targets[@]}"; do targets+=(--target-python "$version"); done
echo "sanity: every test, with import and compile on Python ${newest_targets[*]} (ansible-core 2.19)"
PATH=$root/.venv/bin:$dir/bin:$PATH ansible-test sanity \
  --controller origin:python=venv/3.11 "${targets[@]}" --color no "$@" || status=1
exit $status
