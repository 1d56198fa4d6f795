#!/usr/bin/env bash
# Idempotent set-up for a bare machine: the Debian packages the lab runs, the pinned .venv, and the
# link that lets Ansible find this checkout as the collection fleet.rollout. Fast when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
[ -x /usr/sbin/haproxy ] || missing+=(haproxy)
[ -x /usr/sbin/nginx ] || missing+=(nginx)
[ -x /usr/sbin/sshd ] || missing+=(openssh-server)
[ -x /usr/bin/prometheus ] || missing+=(prometheus)  # for `lab up --prometheus`
if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  echo "setup: installing Debian packages: ${missing[*]}"
  # The packages must not start their system-wide services (port 80, 22, 9090 on every address): the
  # lab starts its own instances on loopback. policy-rc.d is how Debian says "do not start services";
  # --no-install-recommends also keeps prometheus' recommended node exporter (port 9100) out.
  added_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
    $sudo chmod +x /usr/sbin/policy-rc.d
    added_policy=1
  fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  [ -z "$added_policy" ] || $sudo rm -f /usr/sbin/policy-rc.d
fi

# make_venv DIR PYTHON REQUIREMENTS: (re)create DIR when the requirements file changed.
make_venv() {
  local dir=$1 python=$2 requirements=$3 stamp=$1/.requirements.sha256 want
  want=$(sha256sum "$requirements" | cut -d' ' -f1)
  if [ ! -x "$dir/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "setup: creating $dir with $("$python" --version) and $requirements"
    rm -rf "$dir"
    "$python" -m venv "$dir"
    # (this machine's pip config names local mirrors that may not exist: drop those warnings)
    "$dir/bin/pip" install -q --disable-pip-version-check --upgrade pip 2> >(grep -v "is ignored: it is neither" >&2)
    "$dir/bin/pip" install -q --disable-pip-version-check -r "$requirements" 2> >(grep -v "is ignored: it is neither" >&2)
    echo "$want" > "$stamp"
  fi
}

make_venv .venv "${FLEET_PYTHON:-python3}" requirements-dev.txt
# The version matrix for plugin tests: the oldest supported ansible-core on this python, and the
# newest on python3.13 where the machine has one (pyenv keeps it off PATH unless selected).
make_venv .venv-core-2.17 "${FLEET_PYTHON:-python3}" requirements-core-2.17.txt
python313=""
for candidate in python3.13 ~/.pyenv/versions/3.13*/bin/python3.13 /usr/bin/python3.13; do
  if "$candidate" --version >/dev/null 2>&1; then python313=$candidate; break; fi
done
if [ -n "$python313" ]; then
  make_venv .venv-core-latest "$python313" requirements-core-latest.txt
fi

# ansible finds collections as <path>/ansible_collections/<namespace>/<name>.
mkdir -p .tmp/collections/ansible_collections/fleet
ln -sfn ../../../.. .tmp/collections/ansible_collections/fleet/rollout
