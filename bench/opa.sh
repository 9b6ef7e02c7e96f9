#!/usr/bin/env bash
# opa.sh compares intentpdp's AuthZEN endpoint with Open Policy Agent's
# data API over HTTP on loopback, each server in a process of its own,
# deciding the same scenario: intentpdp serves the scenario's Cedar bundle,
# OPA the same policy written in Rego (load -write-opa). The load generator
# checks that every server gives the scenario's decision for every query,
# then sends all of them the same AuthZEN evaluations in alternating rounds,
# with a floor: the same HTTP exchange answered by table lookup
# (load -serve-http-floor), also a process of its own. After each level it
# prints each server's CPU time per call.
#
# OPA is built with `go install` into .bin/opa-$OPA_VERSION/, outside the
# main module, once; OPA_BIN names another binary. BASELINE_BIN names an
# earlier intentpdp build, served beside this tree's and measured in the
# same rounds. Run by hand, never by `make test` or CI. Arguments after the
# scenario go to the load generator.
#
#   bench/opa.sh                                  # p10-e1k, 1 and 32 streams
#   bench/opa.sh p10-e1k -rounds 10 -duration 20s
#   BASELINE_BIN=/tmp/old/intentpdp LEVELS="1 32 64" bench/opa.sh
set -euo pipefail
cd "$(dirname "$0")/.."
scenario=${1:-p10-e1k}
shift || true
OPA_VERSION=${OPA_VERSION:-v1.22.4}
opa=${OPA_BIN:-$PWD/.bin/opa-$OPA_VERSION/opa}
port=${PORT:-18481} # intentpdp, OPA, the baseline and the floor take four ports from here
if [ ! -x "$opa" ]; then
	GOBIN=$(dirname "$opa") go install "github.com/open-policy-agent/opa@$OPA_VERSION"
fi
work=$(mktemp -d)
declare -A pid port_of # by the name the load generator reports the server under
trap 'for p in "${pid[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"' EXIT
go build -o "$work/intentpdp" ./cmd/intentpdp
go build -o "$work/load" ./bench/cmd/load
"$work/load" -scenario "$scenario" -write-bundle "$work/bundle"
"$work/load" -scenario "$scenario" -write-opa "$work/opa"

# start NAME PORT COMMAND... runs a server in the background, its output in
# $work/NAME.log.
start() {
	local name=$1 p=$2
	shift 2
	"$@" >"$work/$name.log" 2>&1 &
	pid[$name]=$! port_of[$name]=$p
}
serve() { # serve NAME BINARY PORT
	start "$1" "$3" "$2" serve --bundle "$work/bundle" --http-listen "127.0.0.1:$3" --listen 127.0.0.1:0 \
		--admin-listen "" --metrics-listen 127.0.0.1:0 --watch=false --log-level error
}
authzen="http://127.0.0.1:$port"
if [ -n "${BASELINE_BIN:-}" ]; then
	serve intentpdp-1 "$work/intentpdp" "$port"
	serve intentpdp-2 "$BASELINE_BIN" $((port + 2))
	authzen+=",http://127.0.0.1:$((port + 2))"
	echo "intentpdp-1 is this tree, intentpdp-2 is $BASELINE_BIN"
else
	serve intentpdp "$work/intentpdp" "$port"
fi
# Neither server logs per request: OPA writes two access-log lines per
# request at its default level, info (OPA_LOG_LEVEL=info to see the cost).
start OPA $((port + 1)) "$opa" run --server --addr "127.0.0.1:$((port + 1))" --log-level "${OPA_LOG_LEVEL:-error}" \
	"$work/opa/policy.rego" "$work/opa/data.json"
start floor $((port + 3)) "$work/load" -scenario "$scenario" -serve-http-floor "127.0.0.1:$((port + 3))"
for n in "${!pid[@]}"; do
	until (exec 3<>"/dev/tcp/127.0.0.1/${port_of[$n]}") 2>/dev/null; do
		kill -0 "${pid[$n]}" 2>/dev/null || { echo "opa.sh: $n exited" >&2; cat "$work"/*.log >&2; exit 1; }
		sleep 0.2
	done
done
"$opa" version | sed -n 1p # not head: opa writing to a closed pipe fails the script under pipefail

# One run per concurrency level, so that each server's CPU time per call
# (user and system, from /proc) is that level's: the figure a shared
# machine's load disturbs least.
cpu() { awk '{print $14 + $15}' "/proc/${pid[$1]}/stat"; }
declare -A ticks
for c in ${LEVELS:-1 32}; do
	for n in "${!pid[@]}"; do ticks[$n]=$(cpu "$n"); done
	"$work/load" -scenario "$scenario" -authzen "$authzen" -opa "http://127.0.0.1:$((port + 1))" \
		-http-floor "http://127.0.0.1:$((port + 3))" -concurrency "$c" -duration 10s -rounds 5 "$@" | tee "$work/report"
	calls=$(sed -n 's/^  calls: //p' "$work/report")
	printf '  server CPU per call:'
	for n in floor intentpdp intentpdp-1 intentpdp-2 OPA; do
		[ -n "${pid[$n]:-}" ] || continue
		awk -v n="$n" -v t=$(($(cpu "$n") - ${ticks[$n]})) -v hz="$(getconf CLK_TCK)" -v calls="$calls" 'BEGIN {
			k = split(calls, f, " "); for (i = 1; i < k; i += 2) if (f[i] == n) printf " %s %.0f µs", n, 1e6 * t / hz / f[i + 1] }'
	done
	echo
done
