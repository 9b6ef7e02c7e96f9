#!/usr/bin/env bash
# Installs Debian's docker-registry (/usr/bin/docker-registry, the CNCF
# distribution registry) for the OCI bundle tests, which start their own
# instance on a loopback port (they write their own htpasswd file).
# Idempotent: does nothing when it is already installed.
set -euo pipefail
if [ -x /usr/bin/docker-registry ]; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# The test starts its own instance on a loopback port; a container without
# an init system may fail to start the packaged service, which is harmless.
$SUDO apt-get install -y -qq --no-install-recommends docker-registry >/dev/null || [ -x /usr/bin/docker-registry ]
