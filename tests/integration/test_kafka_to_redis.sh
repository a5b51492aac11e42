#!/usr/bin/env bash
# Integration: 10,000 generated events produced to the real Kafka broker in
# two halves, `recstream run` consuming them into a real redis-server, then
# e2e_check judges the lists and the committed offsets. On the way: /metrics
# is scraped and must count every event and an online hit rate above chance
# for the second half, and SIGHUP with a bad file and then a good one
# must keep the daemon running and apply the live change. Needs RS_KAFKA_BROKERS and
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

source "$(dirname "$0")/ports.sh"
METRICS_PORT=$(free_port)
cp "$CONFIG" "$DIR/recstream.conf"
CONFIG="$DIR/recstream.conf"
SETS=(--set "metrics.listen=127.0.0.1:$METRICS_PORT" --set "kafka.brokers=$RS_KAFKA_BROKERS" --set "kafka.topics=$TOPIC"
      --set "kafka.group.id=$GROUP" --set "redis.port=$RS_REDIS_PORT"
      --set "redis.prefix=$PREFIX" --set "snapshot.dir=$DIR/snapshots")

"$RECSTREAM" gen --events "$EVENTS" --users 400 --items 300 --clusters 8 --seed 7 \
  --output "$DIR/events.jsonl"
# Two halves: the second arrives once the first half's lists are in Redis, so the
# online hit rate has served lists to check events against.
HALF=$((EVENTS / 2))
head -n "$HALF" "$DIR/events.jsonl" >"$DIR/first.jsonl"
tail -n +"$((HALF + 1))" "$DIR/events.jsonl" >"$DIR/second.jsonl"
"$RECSTREAM" produce -c "$CONFIG" "${SETS[@]}" --input "$DIR/first.jsonl"

"$RECSTREAM" run -c "$CONFIG" "${SETS[@]}" 2>"$DIR/run.log" &
PID=$!

applied=0
wait_applied() { # wait_applied N: until rs:meta (written after the lists) counts N events
  for _ in $(seq 1 240); do
    applied=$(redis-cli -p "$RS_REDIS_PORT" HGET "${PREFIX}meta" events_applied 2>/dev/null || true)
    [ "${applied:-0}" = "$1" ] && return 0
    kill -0 "$PID" 2>/dev/null || return 1
    sleep 0.5
  done
  return 1
}
wait_applied "$HALF" || { echo "FAIL: first half not applied (${applied:-0})"; tail -30 "$DIR/run.log"; exit 1; }
"$RECSTREAM" produce -c "$CONFIG" "${SETS[@]}" --input "$DIR/second.jsonl"
wait_applied "$EVENTS" || true
echo "recstream applied ${applied:-0} of $EVENTS events"

scrape() { # GET /metrics with bash alone
  exec 3<>"/dev/tcp/127.0.0.1/$METRICS_PORT"
  printf 'GET /metrics HTTP/1.0\r\n\r\n' >&3
  cat <&3
  exec 3<&-
}
sleep 1.5 # the metrics text is rendered once a second
metrics=$(scrape)
grep -q "^recstream_events_applied_total $EVENTS\$" <<<"$metrics" \
  || { echo "FAIL: /metrics does not count $EVENTS applied events"; grep applied <<<"$metrics"; exit 1; }
grep -q "^recstream_events_consumed_total $EVENTS\$" <<<"$metrics" \
  || { echo "FAIL: /metrics does not count $EVENTS consumed events"; exit 1; }
grep -q '^recstream_events_rejected_total{reason="malformed"} 0$' <<<"$metrics" \
  || { echo "FAIL: /metrics rejected counts missing"; exit 1; }
lags=$(grep "^recstream_consumer_lag{topic=\"$TOPIC\"" <<<"$metrics" || true)
[ "$(wc -l <<<"$lags")" -eq 4 ] && ! grep -qv ' 0$' <<<"$lags" \
  || { echo "FAIL: consumer lag should be 0 on 4 partitions:"; echo "$lags"; exit 1; }
checked=$(sed -n 's/^recstream_live_checked_events_total //p' <<<"$metrics")
hits=$(sed -n 's/^recstream_live_hits_total //p' <<<"$metrics")
# Every second-half event comes from a user served after the first half; with 8
# planted clusters the lists must hit well above chance (top_n 20 of 300 items: 6.7%).
[ -n "$checked" ] && [ -n "$hits" ] && [ "$checked" -ge "$HALF" ] && [ "$checked" -le "$EVENTS" ] \
  && [ $((hits * 100)) -ge $((checked * 15)) ] \
  || { echo "FAIL: online hit rate: $hits hits of $checked checked events"; exit 1; }
# The model thread's scheduler times, where the kernel keeps them: it has run.
if [ -r /proc/thread-self/schedstat ]; then
  cpu=$(sed -n 's/^recstream_model_thread_cpu_seconds_total //p' <<<"$metrics")
  wait_s=$(sed -n 's/^recstream_model_thread_cpu_wait_seconds_total //p' <<<"$metrics")
  [ -n "$cpu" ] && [ -n "$wait_s" ] && awk -v c="$cpu" 'BEGIN { exit !(c > 0) }' \
    || { echo "FAIL: model thread CPU '$cpu' s, waited '$wait_s' s"; exit 1; }
fi
echo "metrics: $(grep -c '^recstream_' <<<"$metrics") samples, applied count matches, lag 0," \
  "hit rate $hits of $checked, model thread CPU ${cpu:-?} s (waited ${wait_s:-?} s)"

echo "bogus line without equals" >>"$CONFIG"
kill -HUP "$PID"; sleep 0.5
kill -0 "$PID" || { echo "FAIL: SIGHUP with a bad file stopped the daemon"; exit 1; }
grep -q "config reload failed" "$DIR/run.log" || { echo "FAIL: bad reload not reported"; exit 1; }
sed -i '$d' "$CONFIG"
sed -i 's/^mf_weight *=.*/mf_weight = 0.75/' "$CONFIG"
kill -HUP "$PID"; sleep 0.5
grep -q "config reload: 1 live setting(s) changed" "$DIR/run.log" \
  || { echo "FAIL: good reload not applied"; tail -5 "$DIR/run.log"; exit 1; }
echo "SIGHUP: bad file reported and ignored, good file applied"

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

# `recommend` reads the final snapshot the daemon left: u1 is known there.
rec=$("$RECSTREAM" recommend -c "$CONFIG" "${SETS[@]}" --user u1 --json 2>/dev/null)
grep -q '^\[{"item":".*"why":' <<<"$rec" \
  || { echo "FAIL: recommend from the snapshot gave '$rec'"; exit 1; }
echo "recommend: u1's list, with reasons, from the final snapshot"

# The example frontend reader gets the personal list of a user with events.
READER="$(cd "$(dirname "$0")/../.." && pwd)/scripts/example_reader.py"
out=$(/usr/bin/python3 "$READER" u1 --port "$RS_REDIS_PORT" --prefix "$PREFIX" --json)
grep -q '"source": "personal"' <<<"$out" || { echo "FAIL: example reader: $out"; exit 1; }
echo "example reader: personal list for u1"
