#!/usr/bin/env bash
# A real single-node Apache Kafka broker (KRaft mode, loopback) for tests and
# benchmarks. The broker's jars come from Maven Central through Maven and are
# cached under .kafka/ in the project, so later starts take seconds.
#
#   scripts/kafka.sh start [PORT]   fetch if needed, format, start; waits until ready
#   scripts/kafka.sh stop           stop the broker this script started
#   scripts/kafka.sh kill           kill -9 it (for outage tests)
#   scripts/kafka.sh restart-same   start again on the same data directory
set -euo pipefail

KAFKA_VERSION="${KAFKA_VERSION:-4.1.1}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
HOME_DIR="${RS_KAFKA_HOME:-$ROOT/.kafka}"
LIBS="$HOME_DIR/libs-$KAFKA_VERSION"
RUN="$HOME_DIR/run"
PORT="${2:-${RS_KAFKA_PORT:-39092}}"

fetch() {
  [ -f "$LIBS/.complete" ] && return 0
  mkdir -p "$HOME_DIR/pom" "$LIBS"
  cat > "$HOME_DIR/pom/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>recstream.test</groupId><artifactId>kafka-broker</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId>
      <version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId>
      <version>2.24.3</version></dependency>
  </dependencies>
</project>
POM
  echo "kafka.sh: fetching Apache Kafka $KAFKA_VERSION from Maven Central"
  mvn -q -B -f "$HOME_DIR/pom/pom.xml" dependency:copy-dependencies \
    -DoutputDirectory="$LIBS" >"$HOME_DIR/fetch.log" 2>&1 \
    || { tail -20 "$HOME_DIR/fetch.log" >&2; exit 1; }
  touch "$LIBS/.complete"
}

java_cp() { java -Xmx768m -cp "$LIBS/*" "$@"; }

wait_ready() {
  PORT=$(cat "$RUN/port")
  for _ in $(seq 1 120); do
    if (echo >"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
      # the port opens before the broker has a controller; give it a moment
      sleep 1
      return 0
    fi
    if ! kill -0 "$(cat "$RUN/pid")" 2>/dev/null; then
      echo "kafka.sh: broker exited; last log lines:" >&2
      tail -30 "$RUN/broker.log" >&2
      return 1
    fi
    sleep 0.5
  done
  echo "kafka.sh: broker not ready after 60 s" >&2
  return 1
}

launch() {
  nohup java -Xmx768m -cp "$LIBS/*" kafka.Kafka \
    "$RUN/server.properties" >>"$RUN/broker.log" 2>&1 &
  echo $! >"$RUN/pid"
  wait_ready
  echo "kafka.sh: broker $KAFKA_VERSION ready on 127.0.0.1:$PORT (pid $(cat "$RUN/pid"))"
}

start() {
  fetch
  stop_quiet
  rm -rf "$RUN"
  mkdir -p "$RUN/data"
  echo "$PORT" >"$RUN/port"
  cat >"$RUN/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$((PORT + 1))
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$((PORT + 1))
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$RUN/data
num.partitions=4
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
PROPS
  local uuid
  uuid=$(java_cp kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1)
  java_cp kafka.tools.StorageTool format -t "$uuid" -c "$RUN/server.properties" \
    >"$RUN/format.log" 2>&1 || { cat "$RUN/format.log" >&2; exit 1; }
  launch
}

stop_quiet() {
  [ -f "$RUN/pid" ] || return 0
  local pid
  pid=$(cat "$RUN/pid")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$RUN/pid"
}

case "${1:-}" in
  fetch) fetch ;;
  start) start ;;
  stop) stop_quiet; echo "kafka.sh: broker stopped" ;;
  kill) [ -f "$RUN/pid" ] && kill -9 "$(cat "$RUN/pid")" 2>/dev/null; echo "kafka.sh: broker killed" ;;
  restart-same) launch ;;
  *) echo "usage: scripts/kafka.sh start [PORT] | stop | kill | restart-same | fetch" >&2; exit 2 ;;
esac
