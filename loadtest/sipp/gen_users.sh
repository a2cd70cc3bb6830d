#!/usr/bin/env bash
# Writes a SIPp injection file (users.csv) for herald's scenarios.
# usage: loadtest/sipp/gen_users.sh N [DOMAIN=example.com] [OUT=users.csv]
# Each line: own user;buddy user;domain   ([field0];[field1];[field2] in the scenarios)
#   - subscribe/watcher: [field0] watches [field1]
#   - publish/publisher: [field0] publishes its own presence
# Users are user0..user{N-1}; the buddy of user i is user (i+1) mod N, so publishing
# user0..userN-1 and subscribing with the same file gives every presentity one watcher.
set -euo pipefail
n=${1:?usage: gen_users.sh N [DOMAIN] [OUT]}
domain=${2:-example.com}
out=${3:-users.csv}
case $n in ''|*[!0-9]*) echo "N must be a positive integer" >&2; exit 2;; esac
[ "$n" -ge 1 ] || { echo "N must be >= 1" >&2; exit 2; }
{
  echo "SEQUENTIAL"
  awk -v n="$n" -v d="$domain" 'BEGIN { for (i = 0; i < n; i++) printf "user%d;user%d;%s\n", i, (i + 1) % n, d }'
} > "$out"
echo "wrote $n users to $out" >&2
