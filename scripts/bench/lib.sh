# Shared by the benchmark scripts: one Release build (build-release/), the
# Python environment with the peers, the data, a private redis-server and a
# Kafka broker on their own ports (and the broker's own home directory), each
# stopped on exit by the script that started it, and small helpers.
# Source it; it sets ROOT, BIN_DIR, RS, OUT, PY, DATA, BENCH_REDIS_PORT,
# BENCH_KAFKA_PORT, BENCH_BROKERS, BENCH_TMP.
#
# scripts/bench/run starts Redis and Kafka once for every script and exports
# BENCH_SERVERS=1; a script run alone starts (and stops) what it needs.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BENCH="$ROOT/scripts/bench"
BIN_DIR="$ROOT/build-release"
RS="$BIN_DIR/recstream"
OUT="$BENCH/out"
PY="$BENCH/.venv/bin/python"
DATA="${RS_TEST_DATA:-$ROOT/../shared/data}"
BENCH_REDIS_PORT="${BENCH_REDIS_PORT:-36500}"
BENCH_KAFKA_PORT="${BENCH_KAFKA_PORT:-39500}"
BENCH_BROKERS="127.0.0.1:$BENCH_KAFKA_PORT"
export RS_KAFKA_HOME="${BENCH_KAFKA_HOME:-$ROOT/.kafka-bench}"
# Every contender gets one core: OpenBLAS, OpenMP (implicit) and numpy alike.
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
BENCH_TMP="$(mkdir -p "$OUT" && mktemp -d "$OUT/tmp.XXXXXX")"
BENCH_STARTED_REDIS=0 BENCH_STARTED_KAFKA=0
mkdir -p "$OUT"

# CPU time of a process (or PID/task/TID: one thread) so far, in clock ticks
# (0 once it is gone).
ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
# The machine's busy and total CPU time so far, in clock ticks, all cores.
machine_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' /proc/stat; }

# A progress line on stderr with the time since the script started.
BENCH_T0=$(date +%s)
say() { echo "[bench $(( $(date +%s) - BENCH_T0 ))s] $*" >&2; }

bench_build() {
  if [ "${BENCH_BUILT:-0}" = 1 ]; then return; fi
  say "building Release in build-release/"
  cmake -S "$ROOT" -B "$BIN_DIR" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$BIN_DIR" -j 2 >/dev/null
}

bench_venv() {
  [ -x "$PY" ] && [ "${BENCH_VENV_OK:-0}" = 1 ] && return
  "$BENCH/venv.sh" >/dev/null
}

bench_data() { # files that must be there
  local f
  for f in "$@"; do
    [ -r "$DATA/$f" ] || { echo "bench: missing data file $DATA/$f (set RS_TEST_DATA)" >&2; exit 2; }
  done
}

bench_redis_start() {
  if [ "${BENCH_SERVERS:-0}" = 1 ]; then return; fi
  say "starting redis-server on port $BENCH_REDIS_PORT"
  redis-server --port "$BENCH_REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
    --daemonize yes --pidfile "$BENCH_TMP/redis.pid" --dir "$BENCH_TMP" \
    --logfile "$BENCH_TMP/redis.log"
  BENCH_STARTED_REDIS=1
  for _ in $(seq 1 50); do redis-cli -p "$BENCH_REDIS_PORT" ping >/dev/null 2>&1 && return; sleep 0.1; done
  echo "bench: redis-server did not start on port $BENCH_REDIS_PORT" >&2
  exit 1
}

bench_kafka_start() {
  if [ "${BENCH_SERVERS:-0}" = 1 ]; then return; fi
  say "starting the Kafka broker on port $BENCH_KAFKA_PORT (home $RS_KAFKA_HOME)"
  BENCH_STARTED_KAFKA=1
  "$ROOT/scripts/kafka.sh" start "$BENCH_KAFKA_PORT" >/dev/null
}

# Stops the servers this shell started (and only those).
bench_servers_stop() {
  if [ "$BENCH_STARTED_REDIS" = 1 ] && [ -f "$BENCH_TMP/redis.pid" ]; then
    kill "$(cat "$BENCH_TMP/redis.pid")" 2>/dev/null || true
    BENCH_STARTED_REDIS=0
  fi
  if [ "$BENCH_STARTED_KAFKA" = 1 ]; then
    "$ROOT/scripts/kafka.sh" stop >/dev/null 2>&1 || true
    BENCH_STARTED_KAFKA=0
  fi
}

bench_cleanup() {
  bench_servers_stop
  rm -rf "$BENCH_TMP"
}
trap bench_cleanup EXIT

# Median of the numbers on stdin, one per line.
median() { sort -g | awk '{a[NR]=$1} END {if (NR) print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

# Writes out/<name>.md and out/<name>.json from the raw results of one script.
bench_fragment() { "$PY" "$BENCH/fragments.py" "$OUT" "$1"; }
