# lib.sh - helpers shared by the Kafka integration tests (sourced, not run):
# a scratch directory cleaned up on exit with every process the test started,
# polling for a condition with a deadline (no fixed sleeps), /metrics scraping,
# and per-user event counts from snapshots. The caller sets RECSTREAM, CONFIG
# and NAME before sourcing; RS_KAFKA_BROKERS and RS_REDIS_PORT come from
# scripts/test.sh.
: "${RS_KAFKA_BROKERS:?start a broker (scripts/test.sh does)}"
: "${RS_REDIS_PORT:?start redis-server (scripts/test.sh does)}"
source "$(dirname "${BASH_SOURCE[0]}")/ports.sh"

RUN_ID="$NAME-$$-$(date +%s)"
DIR="$(mktemp -d "/tmp/recstream-$NAME.XXXXXX")"
PIDS=()
cleanup() {
  for p in "${PIDS[@]+"${PIDS[@]}"}"; do kill -9 "$p" 2>/dev/null || true; done
  [ -n "${KEEP:-}" ] || rm -rf "$DIR"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*"
  for f in "$DIR"/*.log; do [ -f "$f" ] && { echo "--- $f"; tail -20 "$f"; }; done
  exit 1
}

# wait_for SECONDS WHAT COMMAND...: polls COMMAND every 0.2 s until it succeeds.
wait_for() {
  local secs="$1" what="$2" i
  shift 2
  for ((i = 0; i < secs * 5; i++)); do
    "$@" && return 0
    sleep 0.2
  done
  fail "timed out after ${secs} s waiting for: $what"
}

# scrape PORT: GET /metrics with bash alone.
scrape() {
  local out
  exec 3<>"/dev/tcp/127.0.0.1/$1" || return 1
  printf 'GET /metrics HTTP/1.0\r\n\r\n' >&3
  out=$(cat <&3)
  exec 3<&-
  printf '%s\n' "$out"
}

# metric PORT SAMPLE: the value of one sample (name with its labels), or empty.
metric() {
  scrape "$1" 2>/dev/null | awk -v s="$2" '$1 == s { print $2 }'
}

# metric_is PORT SAMPLE VALUE: succeeds when the sample has that value.
metric_is() { [ "$(metric "$1" "$2")" = "$3" ]; }

# run_sets INSTANCE TOPIC METRICS_PORT: the --set flags of one `recstream run`.
run_sets() {
  SETS=(--set "kafka.brokers=$RS_KAFKA_BROKERS" --set "kafka.topics=$2"
        --set "kafka.group.id=$RUN_ID" --set "kafka.client.id=$1"
        --set "redis.port=$RS_REDIS_PORT"
        --set "redis.prefix=$RUN_ID-$1:" --set "snapshot.dir=$DIR/$1"
        --set "snapshot.every_events=2000" --set "snapshot.interval_s=1"
        --set "metrics.listen=127.0.0.1:$3" --set "log.level=info")
}

newest() { ls "$DIR/$1"/snap-*.rsnap 2>/dev/null | tail -1; }

# covered INSTANCE: messages the newest snapshot of INSTANCE covers (sum of next offsets).
covered() {
  local f
  f=$(newest "$1")
  [ -n "$f" ] || { echo 0; return; }
  "$RECSTREAM" snapshot-info --json "$f" 2>/dev/null | jq '[.offsets[]?.next] | add // 0' \
    || echo 0
}

# expected_counts EVENTS_JSONL: {user: events} of a generated stream, sorted.
expected_counts() {
  jq -s -S 'group_by(.user) | map({key: .[0].user, value: length}) | from_entries' "$1"
}

# snapshot_counts INSTANCE...: {user: events} summed over the newest snapshots.
snapshot_counts() {
  local i
  for i in "$@"; do
    "$RECSTREAM" snapshot-info --json --user-events "$(newest "$i")" | jq '.user_events'
  done | jq -s -S 'map(to_entries) | add | group_by(.key)
                   | map({key: .[0].key, value: (map(.value) | add)}) | from_entries'
}

# stop_run PID: SIGTERM, and the exit code must be 0.
stop_run() {
  local rc=0
  kill -TERM "$1"
  wait "$1" || rc=$?
  [ "$rc" -eq 0 ] || fail "recstream run (pid $1) exited $rc after SIGTERM"
}
