#!/usr/bin/env bash
# Integration: exactly-once model state across kill -9. A generated stream is
# produced to a one-partition topic; one `recstream run` consumes it without
# interruption (the reference), another is killed with SIGKILL at random
# moments KILLS times and restarted, then allowed to finish. The final
# snapshots of both must hold bit-identical state (same XXH3 for the id maps,
# model, histories, popularity, event counts and offsets), and the per-user
# event counts must equal what was produced. The same stream on a
# four-partition topic (where interleaving, hence the model, may differ)
# must end with exactly the produced counts. A run whose snapshots cannot be
# written (file size limit standing in for a full disk) keeps consuming,
# commits nothing and exits 1; the next run still ends with exact counts. A
# snapshot of another shape is refused with exit 2. Needs RS_KAFKA_BROKERS and
# RS_REDIS_PORT (scripts/test.sh starts both). The kills happen while the
# stream is still being produced (paced), so they land mid-stream: in start-up,
# between snapshots and while a snapshot child is writing.
#   test_snapshot_recovery.sh RECSTREAM_BIN KAFKA_TOPIC_BIN CONFIG
set -euo pipefail

RECSTREAM="$1"
MKTOPIC="$2"
CONFIG="$3"
NAME=recovery
source "$(dirname "$0")/lib.sh" # RUN_ID, DIR, fail, newest, covered, expected_counts
EVENTS="${RS_RECOVERY_EVENTS:-200000}"
KILLS="${RS_RECOVERY_KILLS:-20}"
KILLS4="${RS_RECOVERY_KILLS4:-8}"

PID=""
PRODUCER=""
cleanup() { # replaces lib.sh's: this test tracks its one run and its producer
  [ -n "$PID" ] && kill -9 "$PID" 2>/dev/null || true
  [ -n "$PRODUCER" ] && kill "$PRODUCER" 2>/dev/null || true
  [ -n "${KEEP:-}" ] || rm -rf "$DIR"
}

# sets NAME TOPIC: the --set flags of one consumer (its own group, snapshots, prefix).
sets() {
  SETS=(--set "kafka.brokers=$RS_KAFKA_BROKERS" --set "kafka.topics=$2"
        --set "kafka.group.id=$RUN_ID-$1" --set "kafka.group.instance.id=$RUN_ID-$1"
        --set "redis.port=$RS_REDIS_PORT" --set "redis.prefix=$RUN_ID-$1:"
        --set "snapshot.dir=$DIR/$1" --set "snapshot.every_events=5000"
        --set "snapshot.interval_s=1" --set "snapshot.keep=3" --set "log.level=warn"
        --set "metrics.listen=") # not scraped here; the default port may be taken
}

# finish NAME TOPIC: runs until a snapshot covers every event, then SIGTERM.
finish() {
  sets "$1" "$2"
  "$RECSTREAM" run -c "$CONFIG" "${SETS[@]}" 2>>"$DIR/$1.log" &
  PID=$!
  for _ in $(seq 1 600); do
    [ "$(covered "$1")" = "$EVENTS" ] && break
    kill -0 "$PID" 2>/dev/null || fail "$1: recstream exited early"
    sleep 0.2
  done
  kill -TERM "$PID"
  local rc=0
  wait "$PID" || rc=$?
  PID=""
  [ "$rc" -eq 0 ] || fail "$1: recstream run exited $rc after SIGTERM"
  [ "$(covered "$1")" = "$EVENTS" ] || fail "$1: final snapshot covers $(covered "$1") of $EVENTS"
}

# killloop NAME TOPIC KILLS: starts and SIGKILLs recstream at random moments.
killloop() {
  sets "$1" "$2"
  for k in $(seq 1 "$3"); do
    "$RECSTREAM" run -c "$CONFIG" "${SETS[@]}" 2>>"$DIR/$1.log" &
    PID=$!
    ms=$((300 + RANDOM % 1500))
    sleep "$((ms / 1000)).$(printf '%03d' $((ms % 1000)))"
    kill -0 "$PID" 2>/dev/null || fail "$1: recstream died by itself before kill $k"
    kill -9 "$PID"
    wait "$PID" 2>/dev/null || true
    PID=""
    echo "kill $k after ${ms} ms: newest snapshot covers $(covered "$1") of $EVENTS"
  done
}

# The sections whose bytes must match, as "name checksum" lines.
state_sums() {
  "$RECSTREAM" snapshot-info --json "$(newest "$1")" | jq -r '.sections[]
    | select(.name | IN("users", "items", "model", "history", "popularity",
                        "user_events", "offsets")) | "\(.name) \(.checksum)"'
}

# Per-user counts in the newest snapshot of NAME against what was produced.
check_counts() {
  "$RECSTREAM" snapshot-info --json --user-events "$(newest "$1")" \
    | jq -S '.user_events' >"$DIR/$1.counts"
  cmp -s "$DIR/expected.counts" "$DIR/$1.counts" \
    || fail "$1: per-user event counts differ from the produced ones"
  local applied
  applied=$("$RECSTREAM" snapshot-info --json "$(newest "$1")" | jq '.events_applied')
  [ "$applied" = "$EVENTS" ] || fail "$1: $applied events applied, $EVENTS produced"
  echo "$1: per-user counts match the $EVENTS produced events"
}

"$RECSTREAM" gen --events "$EVENTS" --users 3000 --items 800 --clusters 8 --seed 11 \
  --output "$DIR/events.jsonl"
expected_counts "$DIR/events.jsonl" >"$DIR/expected.counts"
"$MKTOPIC" "$RS_KAFKA_BROKERS" "$RUN_ID-p1" 1
"$MKTOPIC" "$RS_KAFKA_BROKERS" "$RUN_ID-p4" 4

# produce_paced TOPIC SECONDS: the whole stream, spread over about SECONDS, in the background.
produce_paced() {
  "$RECSTREAM" produce -c "$CONFIG" --set "kafka.brokers=$RS_KAFKA_BROKERS" \
    --set "kafka.topics=$1" --input "$DIR/events.jsonl" --rate $((EVENTS / $2)) \
    >>"$DIR/produce.log" 2>&1 &
  PRODUCER=$!
}
producer_done() {
  wait "$PRODUCER" || fail "producing failed"
  PRODUCER=""
}

echo "== one partition: $KILLS random kill -9 while the stream arrives, then to the end"
produce_paced "$RUN_ID-p1" $((KILLS * 3 / 4 + 1))
killloop killed "$RUN_ID-p1" "$KILLS"
producer_done
finish killed "$RUN_ID-p1"
echo "== one partition: reference run without interruption"
finish ref "$RUN_ID-p1"
state_sums ref >"$DIR/ref.sums"
state_sums killed >"$DIR/killed.sums"
cat "$DIR/killed.sums"
[ "$(wc -l <"$DIR/ref.sums")" -ge 4 ] || fail "too few sections compared"
diff "$DIR/ref.sums" "$DIR/killed.sums" \
  || fail "state after $KILLS kills differs from the uninterrupted run"
echo "identical to the uninterrupted run after $KILLS kills"
check_counts ref
check_counts killed

echo "== a snapshot of another shape is refused"
sets killed "$RUN_ID-p1"
rc=0
"$RECSTREAM" run -c "$CONFIG" "${SETS[@]}" --set model.factors=8 2>"$DIR/shape.log" || rc=$?
[ "$rc" -eq 2 ] || fail "run with other factors exited $rc, expected 2"
grep -q "refusing snapshot" "$DIR/shape.log" || fail "no clear refusal message"
echo "refused: $(grep -o 'snapshot has factors = [0-9]*' "$DIR/shape.log" | head -1)"

echo "== snapshots fail (disk full): ingestion goes on, nothing is committed"
sets full "$RUN_ID-p1"
( ulimit -f 64; exec "$RECSTREAM" run -c "$CONFIG" "${SETS[@]}" ) 2>"$DIR/full.log" &
PID=$!
for _ in $(seq 1 100); do
  grep -q "snapshot failed" "$DIR/full.log" && break
  sleep 0.1
done
sleep 2
kill -0 "$PID" 2>/dev/null || fail "recstream stopped when its snapshots failed"
grep -q "File too large" "$DIR/full.log" || fail "the failed snapshot was not reported"
kill -TERM "$PID"
rc=0
wait "$PID" || rc=$?
PID=""
[ "$rc" -eq 1 ] || fail "run whose final snapshot failed exited $rc, expected 1"
[ -z "$(newest full)" ] || fail "a snapshot appeared although writes failed"
finish full "$RUN_ID-p1"
check_counts full

echo "== four partitions: $KILLS4 random kill -9 while the stream arrives, then to the end"
produce_paced "$RUN_ID-p4" $((KILLS4 * 3 / 4 + 1))
killloop four "$RUN_ID-p4" "$KILLS4"
producer_done
finish four "$RUN_ID-p4"
check_counts four
echo "PASS"
