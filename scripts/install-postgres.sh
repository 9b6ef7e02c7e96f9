#!/usr/bin/env bash
# Installs PostgreSQL 15 (Debian's postgresql package) for the task grant
# store's tests, which start their own server on a temporary data directory
# and a loopback port (internal/testutil/pgtest). Idempotent: does nothing
# when the binaries are already in /usr/lib/postgresql/15/bin. The
# packaged cluster service is never needed.
set -euo pipefail
if [ -x /usr/lib/postgresql/15/bin/postgres ] && [ -x /usr/lib/postgresql/15/bin/initdb ]; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends postgresql-15 >/dev/null
