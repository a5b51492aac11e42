#!/usr/bin/env bash
# Integration: two `recstream run` processes in one consumer group split a
# four-partition topic of the real broker, two partitions each, and each
# applies only the events of its own partitions. Then one stops gracefully
# (SIGTERM: final snapshot, commit, leave the group) while the stream goes on;
# the other is assigned its partitions and resumes them from the offsets that
# final snapshot committed. Summed over both final snapshots, every event is
# applied exactly once (per-user counts equal the produced ones). Users of the
# moved partitions start over in the second model: their state stays in the
# first one's snapshot (README, "Kafka ingestion"). Needs RS_KAFKA_BROKERS and RS_REDIS_PORT.
#   test_group_handover.sh RECSTREAM_BIN KAFKA_TOPIC_BIN KAFKA_RAW_BIN CONFIG
set -euo pipefail
RECSTREAM="$1"; MKTOPIC="$2"; CONFIG="$4"
NAME=handover
source "$(dirname "$0")/lib.sh"

EVENTS=40000
FIRST=20000
TOPIC="$RUN_ID"
PORT_A=$((40000 + RANDOM % 10000))
PORT_B=$((50000 + RANDOM % 10000))

"$RECSTREAM" gen --events "$EVENTS" --users 1000 --items 400 --clusters 8 --seed 13 \
  --output "$DIR/all.jsonl"
expected_counts "$DIR/all.jsonl" >"$DIR/expected.counts"
head -n "$FIRST" "$DIR/all.jsonl" >"$DIR/first.jsonl"
tail -n +$((FIRST + 1)) "$DIR/all.jsonl" >"$DIR/second.jsonl"
"$MKTOPIC" "$RS_KAFKA_BROKERS" "$TOPIC" 4
produce() {
  "$RECSTREAM" produce -c "$CONFIG" --set "kafka.brokers=$RS_KAFKA_BROKERS" \
    --set "kafka.topics=$TOPIC" --input "$1" >>"$DIR/produce.log" 2>&1
}

start() { # start INSTANCE PORT: sets PID_<INSTANCE>
  run_sets "$1" "$TOPIC" "$2"
  "$RECSTREAM" run -c "$CONFIG" "${SETS[@]}" 2>"$DIR/$1.log" &
  PIDS+=("$!")
  eval "PID_$1=$!"
}
# partitions PORT: how many partitions the instance behind PORT is assigned.
partitions() { scrape "$1" 2>/dev/null | grep -c '^recstream_consumer_lag{' || true; }
has_partitions() { [ "$(partitions "$1")" = "$2" ]; }
applied() { metric "$1" recstream_events_applied_total; }
both_applied() {
  kill -0 "$PID_a" && kill -0 "$PID_b" || fail "an instance stopped"
  [ $(($(applied "$PORT_A") + $(applied "$PORT_B"))) -eq "$1" ]
}

start a "$PORT_A"
start b "$PORT_B"
wait_for 60 "instance a assigned 2 partitions" has_partitions "$PORT_A" 2
wait_for 30 "instance b assigned 2 partitions" has_partitions "$PORT_B" 2
echo "group of two: 2 partitions each"

produce "$DIR/first.jsonl" || fail "producing"
wait_for 60 "$FIRST events applied across the group" both_applied "$FIRST"
a_first=$(applied "$PORT_A")
echo "first $FIRST events: a applied $a_first, b $(applied "$PORT_B")"
[ "$a_first" -gt 0 ] && [ "$a_first" -lt "$FIRST" ] || fail "the partitions were not split"

produce "$DIR/second.jsonl" &
PRODUCER=$!
stop_run "$PID_a"
wait "$PRODUCER" || fail "producing the second part"
grep -q "final snapshot .* written" "$DIR/a.log" || fail "a wrote no final snapshot"
wait_for 60 "instance b assigned all 4 partitions" has_partitions "$PORT_B" 4
b_covers_all() { kill -0 "$PID_b" || fail "b stopped"; [ "$(covered b)" = "$EVENTS" ]; }
wait_for 60 "b's snapshot covering every partition to its end" b_covers_all
stop_run "$PID_b"

# Each applied exactly the events of the partitions it held.
a_snap=$("$RECSTREAM" snapshot-info --json "$(newest a)")
[ "$(jq '.offsets | length' <<<"$a_snap")" = 2 ] || fail "a's snapshot has offsets of other partitions"
[ "$(jq '.events_applied' <<<"$a_snap")" = "$(jq '[.offsets[].next] | add' <<<"$a_snap")" ] \
  || fail "a applied events that are not in its partitions' offsets"
a_total=$(jq '.events_applied' <<<"$a_snap")
b_total=$("$RECSTREAM" snapshot-info --json "$(newest b)" | jq '.events_applied')
[ $((a_total + b_total)) -eq "$EVENTS" ] \
  || fail "a applied $a_total, b $b_total: $((a_total + b_total)) of $EVENTS"
snapshot_counts a b >"$DIR/sum.counts"
cmp -s "$DIR/expected.counts" "$DIR/sum.counts" \
  || fail "per-user counts summed over both models differ from the produced ones"
echo "a stopped after $a_total events, b took over: $a_total + $b_total = $EVENTS, per-user counts match"
echo "PASS"
