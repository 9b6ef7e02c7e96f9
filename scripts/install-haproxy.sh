#!/usr/bin/env bash
# Installs Debian's haproxy (/usr/sbin/haproxy) for the tests and bench scripts that run
# it. Idempotent: does nothing when it is already installed.
set -euo pipefail
if [ -x /usr/sbin/haproxy ]; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# The test starts its own instance on a loopback port; a container without
# an init system may fail to start the packaged service, which is harmless.
$SUDO apt-get install -y -qq --no-install-recommends haproxy >/dev/null || [ -x /usr/sbin/haproxy ]
