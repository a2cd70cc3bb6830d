#!/usr/bin/env bash
# Runs Kamailio's presence server in the foreground on loopback (Ctrl-C or SIGTERM stops it).
# usage: perf/kamailio/run.sh [PORT=5070] [CHILDREN=2] [SHM_MB=1024] [PKG_MB=64]
set -euo pipefail
port=${1:-5070}
children=${2:-2}
shm=${3:-1024}
pkg=${4:-64}
here=$(cd "$(dirname "$0")" && pwd)
# -DD: stay in the foreground (no daemon, main process is this pid); -E: log to stderr;
# -x fm -X fm: f_malloc for shared and private memory (faster than the default q_malloc).
exec kamailio -f "$here/kamailio.cfg" -DD -E -x fm -X fm -l "udp:127.0.0.1:$port" -n "$children" \
  -m "$shm" -M "$pkg" -Y /tmp -A "KAMAILIO_SERVER_ADDRESS=\"sip:127.0.0.1:$port\""
