#!/usr/bin/env bash
# Idempotent set-up for a bare machine: the Debian packages the lab runs, the pinned .venv, and the
# link that lets Ansible find this checkout as the collection fleet.rollout. Fast when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
[ -x /usr/sbin/haproxy ] || missing+=(haproxy)
[ -x /usr/sbin/nginx ] || missing+=(nginx)
[ -x /usr/sbin/sshd ] || missing+=(openssh-server)
if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  echo "setup: installing Debian packages: ${missing[*]}"
  # The packages must not start their system-wide services (port 80, 22 on every address): the lab
  # starts its own instances on loopback. policy-rc.d is how Debian says "do not start services".
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

python=${FLEET_PYTHON:-python3}
stamp=.venv/.requirements.sha256
want=$(sha256sum requirements-dev.txt | cut -d' ' -f1)
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: creating .venv with $($python --version) and requirements-dev.txt"
  "$python" -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check --upgrade pip
  .venv/bin/pip install -q --disable-pip-version-check -r requirements-dev.txt
  echo "$want" > "$stamp"
fi

# ansible finds collections as <path>/ansible_collections/<namespace>/<name>.
mkdir -p .tmp/collections/ansible_collections/fleet
ln -sfn ../../../.. .tmp/collections/ansible_collections/fleet/rollout
