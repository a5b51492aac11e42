#!/usr/bin/env bash
# The test command (README, .ci/run): installs what is missing, builds, runs
# the unit tests, runs them again under AddressSanitizer + UBSan, starts a
# redis-server and a real Apache Kafka broker on loopback, runs the
# integration tests against them, runs the tests of the Redis writer thread
# under ThreadSanitizer, and stops what it started.
#
#   scripts/test.sh            everything
#   scripts/test.sh --unit     unit tests only (no services)
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
JOBS="$(nproc)"
UNIT_ONLY=0
[ "${1:-}" = "--unit" ] && UNIT_ONLY=1

export RS_TEST_DATA="${RS_TEST_DATA:-$ROOT/../shared/data}"
export RS_REDIS_PORT="${RS_REDIS_PORT:-36379}"
export RS_KAFKA_PORT="${RS_KAFKA_PORT:-39092}"
export RS_KAFKA_BROKERS="127.0.0.1:$RS_KAFKA_PORT"

passed=0
failed=0
failures=()
step() { printf '\n==> %s\n' "$*"; }
# run_ctest NAME ARGS...: runs ctest and adds its counts to the totals.
run_ctest() {
  local name="$1"; shift
  local log="$TMP/ctest-$RANDOM.log" total=0 bad=0 line
  ctest "$@" 2>&1 | tee "$log" || true
  line=$(grep -E 'tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -1 || true)
  if [ -n "$line" ]; then
    bad=$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\1/' <<<"$line")
    total=$(sed -E 's/.* failed out of ([0-9]+).*/\1/' <<<"$line")
  else
    bad=1; total=1 # ctest did not even report: count the suite as failed
  fi
  passed=$((passed + total - bad))
  failed=$((failed + bad))
  [ "$bad" -eq 0 ] || failures+=("$name: $bad of $total")
}

TMP="$(mktemp -d /tmp/recstream-test.XXXXXX)"
cleanup() {
  if [ -f "$TMP/redis.pid" ]; then kill "$(cat "$TMP/redis.pid")" 2>/dev/null || true; fi
  "$ROOT/scripts/kafka.sh" stop >/dev/null 2>&1 || true
  rm -rf "$TMP"
}
trap cleanup EXIT

step "dependencies"
"$ROOT/scripts/setup.sh"

step "build (warnings are errors)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$JOBS"

step "unit tests"
# A test program that fails is run once more (librdkafka 2.0.2's consumer close has hung
# once in the embedded-broker test); failing twice fails the run.
run_ctest "unit tests" --test-dir build -LE integration --output-on-failure -j "$JOBS" \
  --repeat until-pass:2

step "unit tests under AddressSanitizer and UndefinedBehaviorSanitizer"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DRS_SANITIZE=ON >/dev/null
cmake --build build-asan -j "$JOBS"
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  run_ctest "sanitizer unit tests" --test-dir build-asan -LE integration --output-on-failure \
  -j "$JOBS" --repeat until-pass:2

step "fuzzing the event decoders for ${RS_FUZZ_SECONDS:-60} s"
if "$ROOT/scripts/fuzz" "${RS_FUZZ_SECONDS:-60}"; then
  passed=$((passed + 1))
else
  failed=$((failed + 1)); failures+=("fuzzing")
fi

if [ "$UNIT_ONLY" -eq 0 ]; then
  step "services: redis-server on 127.0.0.1:$RS_REDIS_PORT, Apache Kafka on $RS_KAFKA_BROKERS"
  redis-server --port "$RS_REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
    --daemonize yes --pidfile "$TMP/redis.pid" --dir "$TMP" --logfile "$TMP/redis.log"
  for _ in $(seq 1 50); do redis-cli -p "$RS_REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
  "$ROOT/scripts/kafka.sh" start "$RS_KAFKA_PORT"

  step "integration tests"
  run_ctest "integration tests" --test-dir build -L integration --output-on-failure

  step "the Redis writer thread under ThreadSanitizer"
  # The tests that run the publisher's writer thread beside the model's thread.
  cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=Debug -DRS_SANITIZE_THREAD=ON >/dev/null
  cmake --build build-tsan -j "$JOBS" --target test_publisher test_redis_sink test_redis_atomic
  TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" \
    run_ctest "ThreadSanitizer tests" --test-dir build-tsan --output-on-failure \
    -R '^(test_publisher|integration_redis_sink|integration_redis_atomic)$'
fi

step "summary"
for f in "${failures[@]+"${failures[@]}"}"; do echo "FAILED: $f"; done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
