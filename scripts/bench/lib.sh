# Shared by the benchmark scripts: a Release build, a private redis-server
# and the test Kafka broker on their own ports, stopped on exit.
# Source it; it sets ROOT, BIN_DIR, BENCH_REDIS_PORT, BENCH_BROKERS, OUT.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BIN_DIR="$ROOT/build-release"
OUT="$ROOT/scripts/bench/out"
BENCH_REDIS_PORT="${BENCH_REDIS_PORT:-36500}"
BENCH_KAFKA_PORT="${BENCH_KAFKA_PORT:-39500}"
BENCH_BROKERS="127.0.0.1:$BENCH_KAFKA_PORT"
BENCH_TMP="$(mktemp -d "${TMPDIR:-/tmp}/recstream-bench.XXXXXX")"
mkdir -p "$OUT"

bench_build() {
  cmake -S "$ROOT" -B "$BIN_DIR" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$BIN_DIR" -j "$(nproc)" >/dev/null
}

bench_redis_start() {
  redis-server --port "$BENCH_REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
    --daemonize yes --pidfile "$BENCH_TMP/redis.pid" --dir "$BENCH_TMP" \
    --logfile "$BENCH_TMP/redis.log"
  for _ in $(seq 1 50); do redis-cli -p "$BENCH_REDIS_PORT" ping >/dev/null 2>&1 && return; sleep 0.1; done
}

bench_kafka_start() {
  RS_KAFKA_HOME="$ROOT/.kafka-bench" "$ROOT/scripts/kafka.sh" start "$BENCH_KAFKA_PORT" >/dev/null
}

bench_cleanup() {
  [ -f "$BENCH_TMP/redis.pid" ] && kill "$(cat "$BENCH_TMP/redis.pid")" 2>/dev/null || true
  RS_KAFKA_HOME="$ROOT/.kafka-bench" "$ROOT/scripts/kafka.sh" stop >/dev/null 2>&1 || true
  rm -rf "$BENCH_TMP"
}
trap bench_cleanup EXIT

# The machine, for the record.
bench_machine() {
  printf '%s, %s cores, %s RAM, %s' "$(lscpu | sed -n 's/^Model name: *//p' | head -1)" \
    "$(nproc)" "$(free -h | awk '/^Mem:/{print $2}')" "$(. /etc/os-release; echo "$PRETTY_NAME")"
}
