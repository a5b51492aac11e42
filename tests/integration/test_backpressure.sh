#!/usr/bin/env bash
# Integration: back-pressure. recstream publishes to a redis-server of this
# test's own, with [kafka] max_pending_lists = 50 (500 users). Redis is
# stopped, the second part of the stream arrives: lists cannot be published,
# so consumption must pause (/metrics: recstream_consumer_paused 1, pauses
# counted) and stay paused, with lag left in Kafka instead of work piled up
# in the process. Redis comes back: consumption resumes, and the final
# snapshot holds every event exactly once (per-user counts) and all lists
# are published. Needs RS_KAFKA_BROKERS (and RS_REDIS_PORT, unused here).
#   test_backpressure.sh RECSTREAM_BIN KAFKA_TOPIC_BIN KAFKA_RAW_BIN CONFIG
set -euo pipefail
RECSTREAM="$1"; MKTOPIC="$2"; CONFIG="$4"
NAME=backpressure
source "$(dirname "$0")/lib.sh"

FIRST=5000
EVENTS=45000
TOPIC="$RUN_ID"
MPORT=$(free_port)
RPORT=$(free_port); [ "$RPORT" != "$MPORT" ] || RPORT=$((MPORT + 1))
start_redis() {
  redis-server --port "$RPORT" --bind 127.0.0.1 --dir "$DIR" --save '' --appendonly no \
    --daemonize yes --logfile "$DIR/redis.log" --pidfile "$DIR/redis.pid"
  wait_for 10 "redis-server on $RPORT" redis_up
}
redis_up() { redis-cli -p "$RPORT" ping >/dev/null 2>&1; }
stop_redis() { redis-cli -p "$RPORT" shutdown nosave >/dev/null 2>&1 || true; }
cleanup_all() { stop_redis; cleanup; }
trap cleanup_all EXIT

"$RECSTREAM" gen --events "$EVENTS" --users 500 --items 300 --clusters 8 --seed 9 \
  --output "$DIR/all.jsonl"
expected_counts "$DIR/all.jsonl" >"$DIR/expected.counts"
head -n "$FIRST" "$DIR/all.jsonl" >"$DIR/first.jsonl"
tail -n +$((FIRST + 1)) "$DIR/all.jsonl" >"$DIR/second.jsonl"
"$MKTOPIC" "$RS_KAFKA_BROKERS" "$TOPIC" 4
produce() {
  "$RECSTREAM" produce -c "$CONFIG" --set "kafka.brokers=$RS_KAFKA_BROKERS" \
    --set "kafka.topics=$TOPIC" --input "$1" >>"$DIR/produce.log" 2>&1 || fail "producing $1"
}

start_redis
run_sets a "$TOPIC" "$MPORT"
"$RECSTREAM" run -c "$CONFIG" "${SETS[@]}" --set "redis.port=$RPORT" \
  --set kafka.max_pending_lists=50 2>"$DIR/run.log" &
PID=$!
PIDS+=("$PID")
applied() { metric "$MPORT" recstream_events_applied_total; }
applied_is() { kill -0 "$PID" 2>/dev/null || fail "recstream stopped"; [ "$(applied)" = "$1" ]; }
produce "$DIR/first.jsonl"
wait_for 60 "$FIRST events applied" applied_is "$FIRST"
wait_for 10 "the first lists published" metric_is "$MPORT" recstream_dirty_users 0

stop_redis
produce "$DIR/second.jsonl"
wait_for 30 "consumption paused" metric_is "$MPORT" recstream_consumer_paused 1
a1=$(applied)
sleep 2 # paused means: nothing more is applied while Redis stays down
a2=$(applied)
metric_is "$MPORT" recstream_consumer_paused 1 || fail "resumed while Redis is down"
[ "$a1" = "$a2" ] || fail "events applied went on while paused ($a1 -> $a2)"
[ "$a2" -lt "$EVENTS" ] || fail "everything was consumed although Redis was down"
# While paused nothing is fetched, so the lag must come from the brokers' log
# end offsets, not from watermarks cached at the last fetch: it is exactly
# what was produced and not applied (metrics are rendered once a second).
lag_sum() { scrape "$MPORT" | awk '/^recstream_consumer_lag\{/ { s += $2 } END { print s + 0 }'; }
lag_is() { lag_sum >"$DIR/lag.log"; [ "$(cat "$DIR/lag.log")" = "$1" ]; }
wait_for 10 "consumer lag $((EVENTS - a2)) while paused (lag.log: the last read)" \
  lag_is $((EVENTS - a2))
lag=$(lag_sum)
pauses=$(metric "$MPORT" recstream_consumer_pauses_total)
echo "redis down: paused after $a2 of $EVENTS events, lag $lag stays in Kafka, $pauses pause(s)"

start_redis
wait_for 60 "all $EVENTS events applied after Redis came back" applied_is "$EVENTS"
wait_for 10 "consumption resumed" metric_is "$MPORT" recstream_consumer_paused 0
wait_for 10 "every list published" metric_is "$MPORT" recstream_dirty_users 0
stop_run "$PID"
snapshot_counts a >"$DIR/a.counts"
cmp -s "$DIR/expected.counts" "$DIR/a.counts" || fail "per-user counts differ from the produced ones"
users=$(redis-cli -p "$RPORT" --scan --pattern "$RUN_ID-a:rec:*" | wc -l)
[ "$users" -eq "$(jq length "$DIR/expected.counts")" ] || fail "$users lists in Redis"
echo "redis back: resumed, all $EVENTS events applied exactly once, $users lists published"
echo "PASS"
