#!/usr/bin/env bash
# opa.sh compares intentpdp's AuthZEN endpoint with Open Policy Agent's
# data API over HTTP on loopback, each server in a process of its own,
# deciding the same scenario: intentpdp serves the scenario's Cedar bundle,
# OPA the same policy written in Rego (load -write-opa). The load generator
# checks that both give the scenario's decision for every query, then sends
# both the same AuthZEN evaluations in alternating rounds.
#
# OPA is built with `go install` into .bin/opa-$OPA_VERSION/, outside the
# main module, once; OPA_BIN names another binary. Run by hand, never by
# `make test` or CI. Load flags after the scenario go to the load generator.
#
#   bench/opa.sh                                  # p10-e1k, 1 and 32 streams
#   bench/opa.sh p10-e1k -rounds 10 -duration 20s
set -euo pipefail
cd "$(dirname "$0")/.."
scenario=${1:-p10-e1k}
shift || true
OPA_VERSION=${OPA_VERSION:-v1.22.4}
authzen_port=${AUTHZEN_PORT:-18481} opa_port=${OPA_PORT:-18482}
opa=${OPA_BIN:-$PWD/.bin/opa-$OPA_VERSION/opa}
if [ ! -x "$opa" ]; then
	GOBIN=$(dirname "$opa") go install "github.com/open-policy-agent/opa@$OPA_VERSION"
fi
work=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"' EXIT
go build -o "$work/intentpdp" ./cmd/intentpdp
go build -o "$work/load" ./bench/cmd/load
"$work/load" -scenario "$scenario" -write-bundle "$work/bundle"
"$work/load" -scenario "$scenario" -write-opa "$work/opa"
# Neither server logs per request: OPA writes two access-log lines per
# request at its default level, info.
"$work/intentpdp" serve --bundle "$work/bundle" --http-listen "127.0.0.1:$authzen_port" --listen 127.0.0.1:0 \
	--admin-listen "" --metrics-listen 127.0.0.1:0 --watch=false --log-level error &
pids+=($!)
"$opa" run --server --addr "127.0.0.1:$opa_port" --log-level error "$work/opa/policy.rego" "$work/opa/data.json" &
pids+=($!)
for i in 0 1; do
	port=$([ "$i" = 0 ] && echo "$authzen_port" || echo "$opa_port")
	until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
		kill -0 "${pids[$i]}" 2>/dev/null || { echo "opa.sh: the server for port $port exited" >&2; exit 1; }
		sleep 0.2
	done
done
"$opa" version | head -1
"$work/load" -scenario "$scenario" -authzen "http://127.0.0.1:$authzen_port" -opa "http://127.0.0.1:$opa_port" \
	-concurrency 1,32 -duration 10s -rounds 5 "$@"
