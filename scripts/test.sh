#!/usr/bin/env bash
# The project's test command: lint, generated-code drift, then every Go test
# with the race detector. It installs what the tests need.
set -euo pipefail
cd "$(dirname "$0")/.."
make lint check-generated
./scripts/install-nginx.sh # the forward-auth integration test runs a real nginx
./scripts/install-registry.sh # the OCI bundle tests push to and pull from a real registry
./scripts/install-postgres.sh # the grant store's tests run a real PostgreSQL
export INTENTPDP_REQUIRE_POSTGRES=1
go test -race -count=1 -timeout 20m ./...
