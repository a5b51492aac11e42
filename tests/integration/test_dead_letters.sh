#!/usr/bin/env bash
# Integration: 1% bad messages (undecodable, invalid fields, oversized) mixed
# into 20,000 good events on a four-partition topic of the real broker, with
# [kafka] dead_letter_topic set. recstream must apply every good event
# exactly once (per-user counts in its final snapshot equal the produced
# ones), never stop, and copy every bad message to the dead-letter topic
# unchanged with its reason and source topic/partition/offset in headers
# (kafka_raw checks each copy against the source message), each exactly once;
# /metrics counts them as produced. Needs RS_KAFKA_BROKERS and RS_REDIS_PORT.
#   test_dead_letters.sh RECSTREAM_BIN KAFKA_TOPIC_BIN KAFKA_RAW_BIN CONFIG
set -euo pipefail
RECSTREAM="$1"; MKTOPIC="$2"; RAW="$3"; CONFIG="$4"
NAME=deadletters
source "$(dirname "$0")/lib.sh"

EVENTS=20000
TOPIC="$RUN_ID"
DLQ="$RUN_ID-dead"
MPORT=$(free_port)

"$RECSTREAM" gen --events "$EVENTS" --users 500 --items 300 --clusters 8 --seed 5 \
  --output "$DIR/events.jsonl"
expected_counts "$DIR/events.jsonl" >"$DIR/expected.counts"
# Every 100th message is a bad one, of four kinds, each with a unique marker.
python3 - "$DIR/events.jsonl" "$DIR/messages.tsv" "$DIR/expected.bad" <<'PY'
import json, sys
src, out, bad = sys.argv[1:4]
kinds = [
    ("malformed", lambda n: '{"user":"u%d","item":' % n),
    ("missing_item", lambda n: '{"user":"u%d","type":"play","bad":%d}' % (n, n)),
    ("bad_type", lambda n: '{"user":"u%d","item":"i1","type":"buy","bad":%d}' % (n, n)),
    ("too_large", lambda n: '{"user":"u%d","item":"i1","type":"play","pad":"%s"}' % (n, "x" * 5000)),
]
with open(src) as f, open(out, "w") as o, open(bad, "w") as b:
    for i, line in enumerate(f):
        ev = json.loads(line)
        o.write("%s\t%s" % (ev["user"], line))
        if i % 100 == 99:
            n = i // 100
            reason, make = kinds[n % len(kinds)]
            value = make(n)
            o.write("bad%d\t%s\n" % (n, value))
            b.write("%s\t%s\n" % (reason, value))
PY
BAD=$(wc -l <"$DIR/expected.bad")
"$MKTOPIC" "$RS_KAFKA_BROKERS" "$TOPIC" 4
"$MKTOPIC" "$RS_KAFKA_BROKERS" "$DLQ" 2
"$RAW" produce "$RS_KAFKA_BROKERS" "$TOPIC" "$DIR/messages.tsv"
TOTAL=$((EVENTS + BAD))

run_sets a "$TOPIC" "$MPORT"
"$RECSTREAM" run -c "$CONFIG" "${SETS[@]}" --set "kafka.dead_letter_topic=$DLQ" \
  2>"$DIR/run.log" &
PID=$!
PIDS+=("$PID")
all_covered() { kill -0 "$PID" 2>/dev/null || fail "recstream stopped"; [ "$(covered a)" = "$TOTAL" ]; }
wait_for 120 "a snapshot covering all $TOTAL messages" all_covered
wait_for 10 "/metrics counting $BAD dead letters" \
  metric_is "$MPORT" 'recstream_dead_letters_total{result="produced"}' "$BAD"
metric_is "$MPORT" 'recstream_dead_letters_pending' 0 || fail "dead letters still pending"
metric_is "$MPORT" 'recstream_events_rejected_total{reason="too_large"}' $((BAD / 4)) \
  || fail "too_large not counted"
stop_run "$PID"
echo "recstream: $TOTAL messages covered, $BAD dead letters produced, still running until SIGTERM"

snapshot_counts a >"$DIR/a.counts"
cmp -s "$DIR/expected.counts" "$DIR/a.counts" || fail "per-user counts differ from the produced ones"
applied=$("$RECSTREAM" snapshot-info --json "$(newest a)" | jq '.events_applied')
[ "$applied" = "$EVENTS" ] || fail "$applied events applied, $EVENTS good ones produced"
echo "model: every good event applied exactly once ($EVENTS, per-user counts match)"

"$RAW" dead-letters "$RS_KAFKA_BROKERS" "$TOPIC" "$DLQ" "$BAD" >"$DIR/got.bad" \
  || fail "dead-letter topic does not match the bad messages"
sort "$DIR/expected.bad" >"$DIR/expected.sorted"
sort "$DIR/got.bad" >"$DIR/got.sorted"
cmp -s "$DIR/expected.sorted" "$DIR/got.sorted" \
  || { diff "$DIR/expected.sorted" "$DIR/got.sorted" | head -5; fail "dead letters or reasons differ"; }
echo "dead letters: all $BAD bad messages, unchanged, each once, with the right reason"
echo "PASS"
