#!/usr/bin/env bash
# Installs nginx (Debian's nginx-light, which carries the auth_request
# module) for the forward-auth integration test. Idempotent: does nothing
# when nginx is already on PATH or in /usr/sbin.
set -euo pipefail
if command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# --no-install-recommends keeps it to the binary; policy-rc.d-free
# containers may fail to start the service, which the test never needs.
$SUDO apt-get install -y -qq --no-install-recommends nginx-light >/dev/null
