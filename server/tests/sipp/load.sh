#!/usr/bin/env bash
# Bounded SIPp load against a freshly started herald (release build), 2 shards, loopback.
# Usage: server/tests/sipp/load.sh [scenario.xml] [rate/s] [calls] [extra herald flags...]
# Prints SIPp's summary (successful/failed calls, achieved rate) and herald's /stats totals.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
scenario="$(realpath "${1:-$here/subscribe.xml}")"; rate="${2:-2000}"; calls="${3:-20000}"
shift $(( $# > 3 ? 3 : $# )) || true
bin="$(realpath "${HERALD_BIN:-${CARGO_TARGET_DIR:-target}/release/herald}")"
port="${SIP_PORT:-25060}"; admin="${ADMIN_PORT:-25080}"
"$bin" --shards 2 --listen "127.0.0.1:$port" --admin-listen "127.0.0.1:$admin" --log warn "$@" &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$admin/stats" >/dev/null && break; sleep 0.1; done
work="$(mktemp -d)"; cd "$work"
start=$(date +%s.%N)
set +e
timeout 120 sipp "127.0.0.1:$port" -sf "$scenario" -i 127.0.0.1 -t "${SIPP_TRANSPORT:-un}" -max_socket 2000 \
  -r "$rate" -m "$calls" -l 5000 -timeout 100s -timeout_error -recv_timeout 8000 -nostdin \
  -trace_stat -fd 1 > sipp.out 2>&1
rc=$?
set -e
end=$(date +%s.%N)
grep -E "Successful call|Failed call|Call Rate|Elapsed Time" sipp.out | tail -4 || true
[ "$rc" = 0 ] || grep -viE "^ *[|-]" sipp.out | tail -5
echo "sipp exit=$rc wall=$(awk -v a="$start" -v b="$end" "BEGIN{printf \"%.2f\", b-a}")s calls=$calls target_rate=$rate"
curl -s "http://127.0.0.1:$admin/stats" | grep -E "^(edge\.(tcp_queue_full|tcp_no_route|udp_in|udp_out|handoff_out|handoff_full_503|handoff_batches|handoff_in) |core\.(tx_2xx|tx_5xx|notify_sent|notify_retransmitted|subscriptions|publications|rx_retransmissions) )"
rm -rf "$work"
