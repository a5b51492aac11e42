#!/usr/bin/env bash
# Integration: 10,000 generated events produced to the real Kafka broker,
# `recstream run` consuming them into a real redis-server, then e2e_check
# judges the lists and the committed offsets. Needs RS_KAFKA_BROKERS and
# RS_REDIS_PORT (scripts/test.sh starts both).
#   test_kafka_to_redis.sh RECSTREAM_BIN E2E_CHECK_BIN CONFIG
set -euo pipefail

RECSTREAM="$1"
CHECK="$2"
CONFIG="$3"
: "${RS_KAFKA_BROKERS:?start a broker (scripts/test.sh does)}"
: "${RS_REDIS_PORT:?start redis-server (scripts/test.sh does)}"

EVENTS=10000
RUN_ID="e2e-$$-$(date +%s)"
TOPIC="$RUN_ID"
GROUP="$RUN_ID-group"
PREFIX="$RUN_ID:"
DIR="$(mktemp -d /tmp/recstream-e2e.XXXXXX)"
PID=""
cleanup() {
  [ -n "$PID" ] && kill -9 "$PID" 2>/dev/null || true
  rm -rf "$DIR"
}
trap cleanup EXIT

SETS=(--set "kafka.brokers=$RS_KAFKA_BROKERS" --set "kafka.topics=$TOPIC"
      --set "kafka.group.id=$GROUP" --set "redis.port=$RS_REDIS_PORT"
      --set "redis.prefix=$PREFIX" --set "snapshot.dir=$DIR/snapshots")

"$RECSTREAM" gen --events "$EVENTS" --users 400 --items 300 --clusters 8 --seed 7 \
  --output "$DIR/events.jsonl"
"$RECSTREAM" produce -c "$CONFIG" "${SETS[@]}" --input "$DIR/events.jsonl"

"$RECSTREAM" run -c "$CONFIG" "${SETS[@]}" 2>"$DIR/run.log" &
PID=$!

applied=0
for _ in $(seq 1 240); do
  applied=$(redis-cli -p "$RS_REDIS_PORT" HGET "${PREFIX}meta" events_applied 2>/dev/null || true)
  [ "${applied:-0}" = "$EVENTS" ] && break
  kill -0 "$PID" 2>/dev/null || break
  sleep 0.5
done
echo "recstream applied ${applied:-0} of $EVENTS events"

kill -TERM "$PID"
rc=0
wait "$PID" || rc=$?
PID=""
if [ "$rc" -ne 0 ]; then
  echo "FAIL: recstream run exited $rc"; tail -30 "$DIR/run.log"; exit 1
fi
if [ "${applied:-0}" != "$EVENTS" ]; then
  echo "FAIL: not all events applied"; tail -30 "$DIR/run.log"; exit 1
fi

"$CHECK" --input "$DIR/events.jsonl" --brokers "$RS_KAFKA_BROKERS" --topic "$TOPIC" \
  --group "$GROUP" --prefix "$PREFIX" --redis-port "$RS_REDIS_PORT" --expect "$EVENTS"
