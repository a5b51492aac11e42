#!/usr/bin/env bash
# Integration: Redis goes away for 20 s in the middle of the stream. recstream
# must keep consuming and applying events, keep its users dirty, reconnect
# with backoff when Redis is back, and then write every pending list; offsets
# are committed only after that. Uses the real Kafka broker (RS_KAFKA_BROKERS)
# and a redis-server of its own, stopped with SHUTDOWN SAVE and started again
# on the same data directory, as an operator's restart would.
#   test_redis_outage.sh RECSTREAM_BIN E2E_CHECK_BIN CONFIG
set -euo pipefail

RECSTREAM="$1"
CHECK="$2"
CONFIG="$3"
: "${RS_KAFKA_BROKERS:?start a broker (scripts/test.sh does)}"
OUTAGE_S="${RS_OUTAGE_S:-20}"

RUN_ID="outage-$$-$(date +%s)"
DIR="$(mktemp -d /tmp/recstream-outage.XXXXXX)"
source "$(dirname "$0")/ports.sh"
PORT=$(free_port)
PID=""
cleanup() {
  [ -n "$PID" ] && kill -9 "$PID" 2>/dev/null || true
  redis-cli -p "$PORT" shutdown nosave >/dev/null 2>&1 || true
  rm -rf "$DIR"
}
trap cleanup EXIT

start_redis() {
  redis-server --port "$PORT" --bind 127.0.0.1 --dir "$DIR" --dbfilename dump.rdb \
    --save '' --appendonly no --daemonize yes --logfile "$DIR/redis.log"
  for _ in $(seq 1 50); do redis-cli -p "$PORT" ping >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "FAIL: redis-server did not start"; exit 1
}
applied() { redis-cli -p "$PORT" HGET "$RUN_ID:meta" events_applied 2>/dev/null || true; }
wait_applied() {
  for _ in $(seq 1 240); do
    [ "$(applied)" = "$1" ] && return 0
    kill -0 "$PID" 2>/dev/null || { echo "FAIL: recstream died"; tail -20 "$DIR/run.log"; exit 1; }
    sleep 0.5
  done
  echo "FAIL: events_applied is '$(applied)', expected $1"; tail -20 "$DIR/run.log"; exit 1
}

SETS=(--set "kafka.brokers=$RS_KAFKA_BROKERS" --set "kafka.topics=$RUN_ID"
      --set "kafka.group.id=$RUN_ID" --set "redis.port=$PORT" --set "redis.prefix=$RUN_ID:"
      --set "metrics.listen=" --set "snapshot.dir=$DIR/snapshots")

"$RECSTREAM" gen --events 20000 --users 300 --items 200 --seed 3 --output "$DIR/all.jsonl"
head -n 10000 "$DIR/all.jsonl" >"$DIR/first.jsonl"
tail -n 10000 "$DIR/all.jsonl" >"$DIR/second.jsonl"

start_redis
"$RECSTREAM" produce -c "$CONFIG" "${SETS[@]}" --input "$DIR/first.jsonl" >/dev/null
"$RECSTREAM" run -c "$CONFIG" "${SETS[@]}" 2>"$DIR/run.log" &
PID=$!
wait_applied 10000
echo "first half applied and published"

redis-cli -p "$PORT" shutdown save >/dev/null 2>&1 || true
echo "redis stopped for ${OUTAGE_S} s; producing the second half meanwhile"
"$RECSTREAM" produce -c "$CONFIG" "${SETS[@]}" --input "$DIR/second.jsonl" >/dev/null
sleep "$OUTAGE_S"
kill -0 "$PID" || { echo "FAIL: recstream stopped during the outage"; exit 1; }
grep -q "publishing .* failed\|redis: " "$DIR/run.log" || { echo "FAIL: outage not logged"; exit 1; }

start_redis
wait_applied 20000
echo "redis back: every event applied and the meta hash rewritten"
kill -TERM "$PID"
rc=0; wait "$PID" || rc=$?; PID=""
[ "$rc" -eq 0 ] || { echo "FAIL: recstream exited $rc"; tail -20 "$DIR/run.log"; exit 1; }

"$CHECK" --input "$DIR/all.jsonl" --brokers "$RS_KAFKA_BROKERS" --topic "$RUN_ID" \
  --group "$RUN_ID" --prefix "$RUN_ID:" --redis-port "$PORT" --expect 20000
