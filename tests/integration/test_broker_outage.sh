#!/usr/bin/env bash
# Integration: the Kafka broker is killed (kill -9) for 20 s in the middle of
# the stream and restarted on the same data. recstream must keep running
# through the outage (it logs the lost connection, nothing more), reconnect,
# rejoin its group and apply the rest of the stream; the producer of the
# second half starts during the outage and delivers once the broker is back
# (idempotent, so no duplicates). The final snapshot holds every event
# exactly once (per-user counts equal the produced ones). Needs
# RS_KAFKA_BROKERS and RS_REDIS_PORT, and scripts/kafka.sh's broker (with the
# same RS_KAFKA_HOME) since the test kills and restarts it.
#   test_broker_outage.sh RECSTREAM_BIN KAFKA_TOPIC_BIN KAFKA_RAW_BIN CONFIG
set -euo pipefail
RECSTREAM="$1"; MKTOPIC="$2"; RAW="$3"; CONFIG="$4"
NAME=brokeroutage
source "$(dirname "$0")/lib.sh"
KAFKA_SH="$(cd "$(dirname "$0")/../.." && pwd)/scripts/kafka.sh"
OUTAGE_S="${RS_BROKER_OUTAGE_S:-20}"

EVENTS=40000
FIRST=20000
TOPIC="$RUN_ID"
MPORT=$(free_port)
restart_broker() { "$KAFKA_SH" restart-same >>"$DIR/broker.log" 2>&1; }
# Whatever happens, the broker is running again for the tests after this one.
cleanup_all() {
  (echo >"/dev/tcp/${RS_KAFKA_BROKERS%:*}/${RS_KAFKA_BROKERS#*:}") 2>/dev/null || restart_broker || true
  cleanup
}
trap cleanup_all EXIT

"$RECSTREAM" gen --events "$EVENTS" --users 1000 --items 400 --clusters 8 --seed 17 \
  --output "$DIR/all.jsonl"
expected_counts "$DIR/all.jsonl" >"$DIR/expected.counts"
jq -r '[.user, tojson] | @tsv' "$DIR/all.jsonl" >"$DIR/all.tsv"
head -n "$FIRST" "$DIR/all.tsv" >"$DIR/first.tsv"
tail -n +$((FIRST + 1)) "$DIR/all.tsv" >"$DIR/second.tsv"
"$MKTOPIC" "$RS_KAFKA_BROKERS" "$TOPIC" 4
"$RAW" produce "$RS_KAFKA_BROKERS" "$TOPIC" "$DIR/first.tsv" >>"$DIR/produce.log" 2>&1 \
  || fail "producing the first half"

run_sets a "$TOPIC" "$MPORT"
# A short session: after the restart the broker forgets the old membership in
# 6 s instead of the default 45 s, which is how long rejoining can take.
"$RECSTREAM" run -c "$CONFIG" "${SETS[@]}" --set kafka.session.timeout.ms=6000 \
  2>"$DIR/run.log" &
PID=$!
PIDS+=("$PID")
applied_is() { kill -0 "$PID" 2>/dev/null || fail "recstream stopped"; [ "$(metric "$MPORT" recstream_events_applied_total)" = "$1" ]; }
wait_for 60 "the first $FIRST events applied" applied_is "$FIRST"

"$KAFKA_SH" kill >>"$DIR/broker.log" 2>&1
echo "broker killed; producing the second half meanwhile; back in ${OUTAGE_S} s"
"$RAW" produce "$RS_KAFKA_BROKERS" "$TOPIC" "$DIR/second.tsv" >>"$DIR/produce.log" 2>&1 &
PRODUCER=$!
PIDS+=("$PRODUCER")
sleep "$OUTAGE_S" # the outage itself
kill -0 "$PID" 2>/dev/null || fail "recstream stopped during the outage"
restart_broker || fail "the broker did not come back"
wait "$PRODUCER" || fail "producing the second half across the outage"
echo "broker back; second half delivered"
wait_for 90 "all $EVENTS events applied after the outage" applied_is "$EVENTS"
all_covered() { [ "$(covered a)" = "$EVENTS" ]; }
wait_for 30 "a snapshot covering every event" all_covered
stop_run "$PID"
snapshot_counts a >"$DIR/a.counts"
cmp -s "$DIR/expected.counts" "$DIR/a.counts" || fail "per-user counts differ from the produced ones"
echo "recstream ran through the outage, reconnected: $EVENTS events, each applied once"
echo "PASS"
