#!/usr/bin/env bash
# gcshare.sh measures the garbage collector's share of a server's CPU:
# it serves a bundle with `intentpdp serve` under GODEBUG=gctrace=1, drives
# it with the load generator, and sums the gctrace CPU of the cycles in that
# window over the server's CPU time. It also prints the server's RSS and
# its CPU per decision (LOAD_ARGS are passed to the load generator, e.g.
# LOAD_ARGS="-batch 100"; the duration must be in seconds, "10s").
#
#   go build -o /tmp/intentpdp ./cmd/intentpdp && go build -o /tmp/load ./bench/cmd/load
#   /tmp/load -scenario p10k-e100k -write-bundle /tmp/p10k
#   bench/gcshare.sh /tmp/intentpdp /tmp/load /tmp/p10k p10k-e100k 50061 [concurrency] [duration]
set -euo pipefail
bin=$1 load=$2 dir=$3 scenario=$4 port=$5 concurrency=${6:-32} duration=${7:-10s}
log=$(mktemp)
GODEBUG=gctrace=1 "$bin" serve --bundle "$dir" --listen "127.0.0.1:$port" --admin-listen "" \
	--http-listen "" --metrics-listen "" --watch=false 2>"$log" &
pid=$!
trap 'kill $pid 2>/dev/null; rm -f "$log"' EXIT
until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
	kill -0 "$pid" 2>/dev/null || { echo "gcshare.sh: the server exited" >&2; cat "$log" >&2; exit 1; }
	sleep 0.5
done
cpu() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
cycles() { grep -c '^gc ' "$log" || true; }
n0=$(cycles) c0=$(cpu)
# shellcheck disable=SC2086 # LOAD_ARGS are words
out=$("$load" -scenario "$scenario" -addr "127.0.0.1:$port" -concurrency "$concurrency" -duration "$duration" -rounds 1 ${LOAD_ARGS:-})
grep -E 'intentpdp|echo |decisions/s' <<<"$out"
# Decisions per second: a batch run reports them, a single-call run's rate is its calls'.
rate=$(awk '/decisions\/s/ {print $2; exit} /^  intentpdp/ {r = $2} END {sub("/s", "", r); if (r != "") print r}' <<<"$out" | head -1)
n1=$(cycles) c1=$(cpu)
rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status") hwm=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
# A gctrace line's CPU is "stw + assist/background/idle + stw ms cpu".
read -r gc idle < <(grep '^gc ' "$log" | sed -n "$((n0 + 1)),${n1}p" |
	sed -E 's/.*, ([0-9.+/]+) ms cpu.*/\1/' | tr '+/' '  ' | awk '{s += $1 + $2 + $3 + $5; i += $4} END {print s + 0, i + 0}')
server=$(((c1 - c0) * 1000 / $(getconf CLK_TCK)))
awk -v n=$((n1 - n0)) -v gc="$gc" -v idle="$idle" -v s="$server" -v rss="$rss" -v hwm="$hwm" -v rate="$rate" -v secs="${duration%s}" 'BEGIN {
	printf "GC cycles %d; GC %.1f%% of the server CPU (%.0f of %d ms) + %.1f%% marking on idle CPU; RSS %d kB, peak %d kB\n",
		n, 100 * gc / s, gc, s, 100 * idle / s, rss, hwm
	printf "server CPU per decision %.1f µs (%d ms for %.0f decisions/s over %s s)\n", 1000 * s / (rate * secs), s, rate, secs }'
