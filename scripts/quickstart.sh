#!/usr/bin/env bash
# The quick start (README): installs what is missing, builds, makes sure a
# redis-server answers on 127.0.0.1:6379 (starting one if none does), runs
# `recstream run` on the embedded Kafka broker, feeds it a generated stream
# with `recstream produce`, and prints a few users' lists read back from Redis.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
EVENTS="${EVENTS:-20000}"
CONF="$ROOT/config/recstream.conf"
TMP="$(mktemp -d /tmp/recstream-quickstart.XXXXXX)"
RUN_PID=""
REDIS_STARTED=0

cleanup() {
  if [ -n "$RUN_PID" ]; then kill -TERM "$RUN_PID" 2>/dev/null; wait "$RUN_PID" 2>/dev/null || true; fi
  if [ "$REDIS_STARTED" -eq 1 ]; then redis-cli -p 6379 shutdown nosave >/dev/null 2>&1 || true; fi
  rm -rf "$TMP"
}
trap cleanup EXIT

echo "==> dependencies"
"$ROOT/scripts/setup.sh"

echo "==> build"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)" --target recstream
BIN="$ROOT/build/recstream"

echo "==> redis-server on 127.0.0.1:6379"
if redis-cli -p 6379 ping >/dev/null 2>&1; then
  echo "using the redis-server already running"
else
  redis-server --port 6379 --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
    --dir "$TMP" --logfile "$TMP/redis.log"
  REDIS_STARTED=1
  for _ in $(seq 1 50); do redis-cli -p 6379 ping >/dev/null 2>&1 && break; sleep 0.1; done
fi

echo "==> recstream run (embedded broker)"
"$BIN" run -c "$CONF" --set "snapshot.dir=$TMP/snapshots" --brokers-file "$TMP/brokers" \
  2>"$TMP/run.log" &
RUN_PID=$!
for _ in $(seq 1 100); do [ -s "$TMP/brokers" ] && break; sleep 0.1; done
[ -s "$TMP/brokers" ] || { cat "$TMP/run.log"; echo "recstream did not start" >&2; exit 1; }

echo "==> generating and producing $EVENTS events"
"$BIN" gen --events "$EVENTS" --users 500 --items 400 --clusters 8 --output "$TMP/events.msgpack"
"$BIN" produce -c "$CONF" --set "kafka.brokers=$(cat "$TMP/brokers")" --input "$TMP/events.msgpack"

echo "==> waiting for the model to take in every event"
applied=0
for _ in $(seq 1 120); do
  applied=$(redis-cli -p 6379 HGET rs:meta events_applied 2>/dev/null || true)
  [ "${applied:-0}" -ge "$EVENTS" ] 2>/dev/null && break
  sleep 0.5
done
echo "events applied: ${applied:-0} of $EVENTS"

echo "==> a few users' top-N lists, read back with GET rs:rec:{user}"
for user in u1 u2 u3; do
  echo "GET rs:rec:$user (first entries)"
  redis-cli -p 6379 --raw GET "rs:rec:$user" | cut -c1-200
done
echo "==> rs:meta"
redis-cli -p 6379 HGETALL rs:meta | paste - -
[ "${applied:-0}" -ge "$EVENTS" ]
