#!/usr/bin/env bash
# Integration: two `recstream run` processes in one consumer group split a
# four-partition topic of the real broker, two partitions each, and each
# applies only the events of its own partitions. Then one stops gracefully
# (SIGTERM: final snapshot, commit, leave the group) while the stream goes on;
# the other is assigned its partitions and resumes them from the offsets that
# final snapshot committed. Summed over both final snapshots, every event is
# applied exactly once (per-user counts equal the produced ones). Then the
# first one starts again (a rolling restart) while the stream goes on: the
# second saves its state and commits before the partitions move back, and the
# first resumes them where the second ended (its own snapshot is older); the
# sum still holds every event once. Users of moved partitions start over in
# the other model (README, "Kafka ingestion"). Needs RS_KAFKA_BROKERS and
# RS_REDIS_PORT.
#   test_group_handover.sh RECSTREAM_BIN KAFKA_TOPIC_BIN KAFKA_RAW_BIN CONFIG
set -euo pipefail
RECSTREAM="$1"; MKTOPIC="$2"; CONFIG="$4"
NAME=handover
source "$(dirname "$0")/lib.sh"

EVENTS=40000
TOPIC="$RUN_ID"
PORT_A=$(free_port)
PORT_B=$(free_port); [ "$PORT_B" != "$PORT_A" ] || PORT_B=$((PORT_A + 1))

"$RECSTREAM" gen --events "$EVENTS" --users 1000 --items 400 --clusters 8 --seed 13 \
  --output "$DIR/all.jsonl"
expected_counts "$DIR/all.jsonl" >"$DIR/expected.counts"
sed -n '1,10000p' "$DIR/all.jsonl" >"$DIR/part1.jsonl"
sed -n '10001,25000p' "$DIR/all.jsonl" >"$DIR/part2.jsonl"
sed -n '25001,$p' "$DIR/all.jsonl" >"$DIR/part3.jsonl"
"$MKTOPIC" "$RS_KAFKA_BROKERS" "$TOPIC" 4
produce() { # produce PART [RATE]
  "$RECSTREAM" produce -c "$CONFIG" --set "kafka.brokers=$RS_KAFKA_BROKERS" \
    --set "kafka.topics=$TOPIC" --input "$DIR/$1.jsonl" ${2:+--rate "$2"} \
    >>"$DIR/produce.log" 2>&1
}

start() { # start INSTANCE PORT: sets PID_<INSTANCE>
  run_sets "$1" "$TOPIC" "$2"
  "$RECSTREAM" run -c "$CONFIG" "${SETS[@]}" 2>>"$DIR/$1.log" &
  PIDS+=("$!")
  eval "PID_$1=$!"
}
# partitions PORT: how many partitions the instance behind PORT is assigned.
partitions() { scrape "$1" 2>/dev/null | grep -c '^recstream_consumer_lag{' || true; }
has_partitions() { [ "$(partitions "$1")" = "$2" ]; }
applied() { metric "$1" recstream_events_applied_total; }
alive() { kill -0 "$PID_a" 2>/dev/null && kill -0 "$PID_b" 2>/dev/null || fail "an instance stopped"; }
both_applied() {
  alive
  local sum=$(($(applied "$PORT_A") + $(applied "$PORT_B")))
  [ "$sum" -le "$1" ] || fail "$sum events applied across the group, more than the $1 produced"
  [ "$sum" -eq "$1" ]
}
a_beyond() { [ "$(applied "$PORT_A")" -gt "$1" ]; }
b_beyond() { [ "$(applied "$PORT_B")" -gt "$1" ]; }

start a "$PORT_A"
start b "$PORT_B"
wait_for 60 "instance a assigned 2 partitions" has_partitions "$PORT_A" 2
wait_for 30 "instance b assigned 2 partitions" has_partitions "$PORT_B" 2
produce part1 || fail "producing"
wait_for 60 "10000 events applied across the group" both_applied 10000
a1=$(applied "$PORT_A")
[ "$a1" -gt 0 ] && [ "$a1" -lt 10000 ] || fail "the partitions were not split"
echo "group of two, 2 partitions each: a applied $a1 of the first 10000, b $(applied "$PORT_B")"

# a stops gracefully in the middle of part 2; b takes its partitions over.
produce part2 7500 &
PRODUCER=$!
wait_for 30 "a consuming part 2" a_beyond "$a1"
stop_run "$PID_a"
grep -q "final snapshot .* written" "$DIR/a.log" || fail "a wrote no final snapshot"
a_stopped=$("$RECSTREAM" snapshot-info --json "$(newest a)" | jq '.events_applied')
wait_for 60 "b assigned all 4 partitions" has_partitions "$PORT_B" 4
wait "$PRODUCER" || fail "producing part 2"
echo "a stopped after $a_stopped events (mid-stream); b holds all 4 partitions"

# a starts again in the middle of part 3: b makes its state durable before
# the partitions move back, and a resumes them where b ended, not where its
# own snapshot did. (client.id a < b: the range assignor gives a the same
# partitions again.)
b2=$(applied "$PORT_B")
produce part3 3000 &
PRODUCER=$!
wait_for 30 "b consuming part 3" b_beyond "$b2"
start a "$PORT_A"
wait_for 60 "a assigned 2 partitions again" has_partitions "$PORT_A" 2
wait "$PRODUCER" || fail "producing part 3"
wait_for 60 "all $EVENTS events applied across the group" both_applied "$EVENTS"
grep -q "another instance went on to offset" "$DIR/a.log" \
  || fail "a did not resume its partitions where b ended"
grep -q "offsets committed before partitions are revoked" "$DIR/b.log" \
  || fail "b did not save its state before the partitions moved"
stop_run "$PID_a"
stop_run "$PID_b"

# a's snapshot holds offsets of its own partitions only.
a_snap=$("$RECSTREAM" snapshot-info --json "$(newest a)")
[ "$(jq '.offsets | length' <<<"$a_snap")" = 2 ] || fail "a's snapshot has offsets of other partitions"
a_total=$(jq '.events_applied' <<<"$a_snap")
b_total=$("$RECSTREAM" snapshot-info --json "$(newest b)" | jq '.events_applied')
[ $((a_total + b_total)) -eq "$EVENTS" ] \
  || fail "a applied $a_total, b $b_total: $((a_total + b_total)) of $EVENTS"
[ "$a_total" -gt "$a_stopped" ] || fail "a applied nothing after it came back"
snapshot_counts a b >"$DIR/sum.counts"
cmp -s "$DIR/expected.counts" "$DIR/sum.counts" \
  || fail "per-user counts summed over both models differ from the produced ones"
echo "a back mid-stream, applied $((a_total - a_stopped)) more: a $a_total + b $b_total = $EVENTS events, per-user counts match"
echo "PASS"
