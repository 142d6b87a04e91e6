#!/usr/bin/env bash
# The whole loop on one machine, in the foreground (Ctrl-C stops it):
# iungo-server on 127.0.0.1:7379 serving the example namespace (imported
# from testdata/examples/iungo.manifest) and its web UI, and valkey-server
# on 127.0.0.1:6379 with the module following that namespace.
#
# Data (iungo's database, valkey's RDB) goes to a temporary directory that
# is removed at the end, unless --data <dir> (make run DATA=<dir>) names a
# directory to keep it in and find it again next time.
set -euo pipefail
cd "$(dirname "$0")/.."
port=${PORT:-6379}
iungo_port=${IUNGO_PORT:-7379}
admin_token=${IUNGO_ADMIN_TOKEN:-admin}
data=""
while [ $# -gt 0 ]; do
  case $1 in
    --data) [ $# -ge 2 ] || { echo "run: --data needs a directory" >&2; exit 2; }; data=$2; shift 2 ;;
    *) echo "run: unknown argument $1; usage: scripts/run.sh [--data <dir>]" >&2; exit 2 ;;
  esac
done
if [ -n "$data" ]; then
  mkdir -p "$data/valkey"
  dir=$(cd "$data" && pwd)
  where="$dir (kept: make run DATA=$dir finds it again)"
else
  dir=$(mktemp -d -t iungo-run.XXXXXX)
  mkdir -p "$dir/valkey"
  where="$dir (temporary: removed when you stop; make run DATA=<dir> keeps it)"
fi

if valkey-cli -p "$port" ping >/dev/null 2>&1; then
  echo "run: something already answers on port $port; stop it or use PORT=<port> make run" >&2
  exit 1
fi

server="" iungo=""
cleanup() {
  kill -TERM $server $iungo 2>/dev/null
  wait $server $iungo 2>/dev/null
  [ -n "$data" ] || rm -rf "$dir"
}
trap cleanup EXIT

# Secrets go through the environment, never the command line (ps shows it).
IUNGO_ADMIN_TOKEN=$admin_token IUNGO_NODE_TOKEN=example-token \
  build/iungo-server --listen "127.0.0.1:$iungo_port" --data "$dir/iungo" \
  --namespace example --import testdata/examples/iungo.manifest > "$dir/iungo-server.out" 2>&1 &
iungo=$!
# The node pins the namespace's public key, which iungo-server prints.
key=""
for _ in $(seq 100); do
  key=$(sed -n 's/^namespace example: .*public key \(.*\)$/\1/p' "$dir/iungo-server.out" 2>/dev/null)
  [ -n "$key" ] && break
  sleep 0.05
done
if [ -z "$key" ]; then
  cat "$dir/iungo-server.out" >&2
  echo "run: iungo-server did not start" >&2
  exit 1
fi
valkey-server testdata/examples/valkey.conf --port "$port" --dir "$dir/valkey" \
  --loadmodule "$PWD/build/iungo.so" endpoint "http://127.0.0.1:$iungo_port" namespace example \
  token example-token public-key "$key" &
server=$!
trap 'exit 0' INT TERM # Ctrl-C is how one stops it: not an error

for _ in $(seq 100); do valkey-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.05; done
for _ in $(seq 100); do [ "$(valkey-cli -p "$port" --raw iungo info | sed -n '/^namespace_version$/{n;p}')" != 0 ] && break; sleep 0.05; done

cat <<MSG

Running, Ctrl-C stops everything:
  iungo UI      http://127.0.0.1:$iungo_port  (admin token: $admin_token), namespace "example"
                public key $key
  valkey-server 127.0.0.1:$port, following iungo's namespace "example"
  data          $where

Try, in another terminal:

  valkey-cli -p $port HSET {u7}:order:1001 user u7 amount 120 status pending
  valkey-cli -p $port HSET {u7}:order:1001 status completed
  valkey-cli -p $port GET {u7}:points                 # 120, credited once

  valkey-cli -p $port SET {s42}:tmp:score 10
  valkey-cli -p $port HSET {s42}:session player p1 room r9
  valkey-cli -p $port PEXPIRE {s42}:session 200
  sleep 1; valkey-cli -p $port EXISTS {s42}:tmp:score   # 0: cleaned up
  valkey-cli -p $port LRANGE {s42}:history 0 -1         # what the session held

  valkey-cli -p $port IUNGO TRIGGER LIST
  valkey-cli -p $port IUNGO INFO

Then change a script or add a route in the UI: edits wait in a draft;
"Review and publish" shows the diff and publishes, and the node runs the new
version at its next heartbeat (a few seconds), or at once with "Push to nodes".

MSG
wait "$server"
