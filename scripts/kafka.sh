#!/usr/bin/env bash
# A single-node KRaft Kafka broker (broker + controller in one JVM) on 127.0.0.1,
# built from Maven Central jars. Everything lives under <repo>/.lab/kafka/:
#   lib/    the jars (fetched on the first `up` by mvn, via ~/.m2)
#   config/ server.properties and log4j2 files (rewritten on every `up`)
#   data/   the log dirs / KRaft metadata (formatted once, kept across restarts)
#   logs/   server.log (broker log), kafka.out (JVM stdout/stderr), mvn.log
#   kafka.pid
#
# Usage: scripts/kafka.sh up|down|status|run CLASS [ARGS...]
#   run   runs a Kafka command-line class from the same jars, e.g.
#         scripts/kafka.sh run org.apache.kafka.tools.TopicCommand --bootstrap-server 127.0.0.1:9092 --list
#
# Environment:
#   KAFKA_PORT (9092)  KAFKA_CONTROLLER_PORT (9093)  KAFKA_START_TIMEOUT (60 s)
#   KAFKA_STOP_TIMEOUT (30 s)  KAFKA_HEAP_OPTS ("-Xms256m -Xmx1g")  KAFKA_OPTS (extra JVM flags)
#   JAVA_HOME (else `java` on PATH; Java 17+)  MVN (mvn)
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
POM="$SCRIPT_DIR/kafka-pom.xml"
STATE="$ROOT/.lab/kafka"
LIB="$STATE/lib"
DATA="$STATE/data"
LOGS="$STATE/logs"
CONF="$STATE/config"
PIDFILE="$STATE/kafka.pid"

HOST=127.0.0.1
PORT="${KAFKA_PORT:-9092}"
CPORT="${KAFKA_CONTROLLER_PORT:-9093}"
START_TIMEOUT="${KAFKA_START_TIMEOUT:-60}"
STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-30}"
HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms256m -Xmx1g}"
MVN="${MVN:-mvn}"
if [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then JAVA="$JAVA_HOME/bin/java"; else JAVA=java; fi

usage() {
  cat >&2 <<EOF
usage: $(basename "$0") up|down|status|run CLASS [ARGS...]
  up      start the broker on $HOST:$PORT (controller $HOST:$CPORT); fetches jars on first use
  down    stop it
  status  exit 0 if running, 3 if not
  run     run a Kafka tool class from the broker's jars (e.g. org.apache.kafka.tools.TopicCommand)
state: $STATE
EOF
}

say() { echo "kafka: $*"; }
die() { echo "kafka: error: $*" >&2; exit 1; }
# shellcheck source=lib.sh
source "$SCRIPT_DIR/lib.sh"

# ---------------------------------------------------------------- helpers
pid_alive() {  # pid of our broker if running, else empty
  live_pid "$PIDFILE" 'kafka\.Kafka '
}

validate_ports() {
  local p
  for p in "$PORT" "$CPORT"; do
    [[ "$p" =~ ^[0-9]+$ && "$p" -gt 0 && "$p" -lt 65536 ]] || die "bad port '$p' (KAFKA_PORT / KAFKA_CONTROLLER_PORT)"
  done
  [[ "$PORT" != "$CPORT" ]] || die "KAFKA_PORT and KAFKA_CONTROLLER_PORT must differ"
}

check_java() {
  command -v "$JAVA" >/dev/null 2>&1 || die "java not found (install Java 17+ or set JAVA_HOME)"
  local v major
  v="$("$JAVA" -version 2>&1 | awk -F'"' '/version/{print $2; exit}')"
  major="${v%%.*}"; [[ "$major" == 1 ]] && major="$(echo "$v" | cut -d. -f2)"
  [[ "$major" =~ ^[0-9]+$ && "$major" -ge 17 ]] || die "Kafka 4 needs Java 17+, found '$v' ($JAVA)"
}

take_lock() {  # serialise concurrent up/down calls
  mkdir -p "$STATE"
  if command -v flock >/dev/null 2>&1; then
    exec 9>"$STATE/.lock"
    flock -w 120 9 || die "could not lock $STATE/.lock (another kafka.sh still running?)"
  fi
}

SERVER_LOG_OFFSET=0  # size of server.log before this start, so we show only this run's lines
log_tail() {
  if [[ -s "$LOGS/kafka.out" ]]; then
    echo "----- last lines of $LOGS/kafka.out -----" >&2
    tail -n 20 "$LOGS/kafka.out" >&2
  fi
  if [[ -s "$LOGS/server.log" ]] && (( $(stat -c %s "$LOGS/server.log") > SERVER_LOG_OFFSET )); then
    echo "----- last lines of $LOGS/server.log (this start) -----" >&2
    tail -c +"$((SERVER_LOG_OFFSET + 1))" "$LOGS/server.log" | tail -n 30 >&2
  fi
}

# ---------------------------------------------------------------- jars
fetch_jars() {
  [[ -f "$POM" ]] || die "missing $POM"
  local want have=""
  want="$(sha256sum "$POM" | cut -d' ' -f1)"
  [[ -f "$LIB/.pom.sha256" ]] && have="$(cat "$LIB/.pom.sha256")"
  if [[ "$want" == "$have" ]] && compgen -G "$LIB/kafka_2.13-*.jar" >/dev/null; then
    return 0
  fi
  command -v "$MVN" >/dev/null 2>&1 || die "mvn not found: it is needed once to fetch the Kafka jars from Maven Central"
  say "fetching Kafka jars from Maven Central (first run; cached in ~/.m2, copied to $LIB) ..."
  mkdir -p "$LOGS"
  rm -rf "$LIB.tmp"
  if ! "$MVN" -B -q -f "$POM" \
        -Dlab.build.dir="$STATE/mvn" \
        dependency:copy-dependencies \
        -DincludeScope=runtime \
        -DoutputDirectory="$LIB.tmp" >"$LOGS/mvn.log" 2>&1; then
    tail -n 40 "$LOGS/mvn.log" >&2
    rm -rf "$LIB.tmp"
    die "mvn could not fetch the Kafka jars (full output: $LOGS/mvn.log)"
  fi
  compgen -G "$LIB.tmp/kafka_2.13-*.jar" >/dev/null || die "mvn ran but no kafka_2.13 jar landed in $LIB.tmp"
  echo "$want" >"$LIB.tmp/.pom.sha256"
  rm -rf "$LIB"
  mv "$LIB.tmp" "$LIB"
  rm -rf "$STATE/mvn"
  say "$(ls "$LIB" | grep -c '\.jar$') jars in $LIB ($(basename "$(ls "$LIB"/kafka_2.13-*.jar)" .jar))"
}

# ---------------------------------------------------------------- config
write_config() {
  mkdir -p "$CONF" "$DATA" "$LOGS"
  cat >"$CONF/server.properties" <<EOF
# written by scripts/kafka.sh on every \`up\`; edit the script, not this file
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$HOST:$CPORT
listeners=PLAINTEXT://$HOST:$PORT,CONTROLLER://$HOST:$CPORT
advertised.listeners=PLAINTEXT://$HOST:$PORT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$DATA
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
auto.create.topics.enable=true
delete.topic.enable=true
group.initial.rebalance.delay.ms=0
# a lab log is replayed from the start: never expire it by time (records may carry
# old event-time timestamps, which time retention would delete at once)
log.retention.ms=-1
log.retention.bytes=-1
EOF
  cat >"$CONF/log4j2.properties" <<EOF
# broker logging: everything to logs/server.log, warnings also to kafka.out
status = warn
appender.file.type = RollingFile
appender.file.name = FILE
appender.file.fileName = \${sys:kafka.logs.dir}/server.log
appender.file.filePattern = \${sys:kafka.logs.dir}/server.log.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 50MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 5
appender.out.type = Console
appender.out.name = STDOUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
appender.out.filter.threshold.type = ThresholdFilter
appender.out.filter.threshold.level = warn
rootLogger.level = info
rootLogger.appenderRef.file.ref = FILE
rootLogger.appenderRef.out.ref = STDOUT
logger.kafka_request.name = kafka.request.logger
logger.kafka_request.level = warn
logger.controller_events.name = org.apache.kafka.controller
logger.controller_events.level = info
EOF
  cat >"$CONF/tools-log4j2.properties" <<EOF
# command-line tools: warnings and errors to stderr only
status = warn
appender.err.type = Console
appender.err.name = STDERR
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = warn
rootLogger.appenderRef.err.ref = STDERR
EOF
}

run_tool() {  # run_tool CLASS ARGS... : a Kafka CLI class from our jars
  local cls="$1"; shift
  [[ -f "$CONF/tools-log4j2.properties" ]] || write_config
  "$JAVA" -Xmx512m -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$CONF/tools-log4j2.properties" \
    -cp "$LIB/*" "$cls" "$@"
}

format_storage() {
  if [[ -f "$DATA/meta.properties" ]]; then
    return 0
  fi
  local id out
  id="$(run_tool kafka.tools.StorageTool random-uuid 2>>"$LOGS/format.log" | tail -n 1 | tr -d '[:space:]')"
  [[ "$id" =~ ^[A-Za-z0-9_-]{22}$ ]] || { cat "$LOGS/format.log" >&2; die "could not make a cluster id (got '$id')"; }
  say "formatting $DATA (cluster id $id)"
  # static quorum (controller.quorum.voters), so no --standalone; --ignore-formatted keeps data safe
  if ! out="$(run_tool kafka.tools.StorageTool format -t "$id" -c "$CONF/server.properties" --ignore-formatted 2>&1)"; then
    echo "$out" >&2
    die "kafka-storage format failed"
  fi
  echo "$out" >>"$LOGS/format.log"
}

broker_answers() {  # the broker answers an ApiVersions request on the client port
  timeout 30 "$JAVA" -Xmx256m -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$CONF/tools-log4j2.properties" \
    -cp "$LIB/*" org.apache.kafka.tools.BrokerApiVersionsCommand \
    --bootstrap-server "$HOST:$PORT" >"$LOGS/readiness.out" 2>&1 \
    && grep -q "$HOST:$PORT" "$LOGS/readiness.out"
}

stop_pid() {  # SIGTERM, wait STOP_TIMEOUT, then SIGKILL
  terminate_pid "$1" broker
  rm -f "$PIDFILE"
}

# ---------------------------------------------------------------- commands
cmd_up() {
  validate_ports
  take_lock
  local pid
  if pid="$(pid_alive)"; then
    say "already running (pid $pid) on $(cat "$STATE/kafka.endpoint" 2>/dev/null || echo "$HOST:$PORT")"
    return 0
  fi
  rm -f "$PIDFILE"
  check_java
  if port_open "$HOST" "$PORT"; then
    die "port $HOST:$PORT is already in use by a process not started from $ROOT (another broker?). Stop it or set KAFKA_PORT."
  fi
  if port_open "$HOST" "$CPORT"; then
    die "controller port $HOST:$CPORT is already in use. Stop that process or set KAFKA_CONTROLLER_PORT."
  fi
  fetch_jars
  write_config
  format_storage

  # keep the previous run's output for post-mortems
  [[ -f "$LOGS/kafka.out" ]] && mv -f "$LOGS/kafka.out" "$LOGS/kafka.out.1"
  SERVER_LOG_OFFSET="$(stat -c %s "$LOGS/server.log" 2>/dev/null || echo 0)"
  # shellcheck disable=SC2086  # heap/extra opts are word lists on purpose
  nohup "$JAVA" $HEAP_OPTS -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
      -Djava.awt.headless=true \
      -Dkafka.logs.dir="$LOGS" \
      -Dlog4j2.configurationFile="$CONF/log4j2.properties" \
      ${KAFKA_OPTS:-} \
      -cp "$LIB/*" kafka.Kafka "$CONF/server.properties" \
      >"$LOGS/kafka.out" 2>&1 </dev/null 9>&- &
  pid=$!
  echo "$pid" >"$PIDFILE"
  echo "$HOST:$PORT controller $HOST:$CPORT" >"$STATE/kafka.endpoint"
  say "starting (pid $pid), waiting up to ${START_TIMEOUT}s for $HOST:$PORT ..."

  rm -f "$LOGS/readiness.out"
  local start=$SECONDS
  while :; do
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$PIDFILE"
      log_tail
      die "the broker exited during start-up (logs in $LOGS)"
    fi
    if port_open "$HOST" "$PORT" && broker_answers; then
      break
    fi
    if (( SECONDS - start >= START_TIMEOUT )); then
      log_tail
      [[ -s "$LOGS/readiness.out" ]] && { echo "----- readiness check -----" >&2; tail -n 10 "$LOGS/readiness.out" >&2; }
      say "stopping the unready broker (pid $pid)"
      stop_pid "$pid"
      die "the broker did not answer on $HOST:$PORT within ${START_TIMEOUT}s (logs in $LOGS; a slow machine may need KAFKA_START_TIMEOUT=120)"
    fi
    sleep 1
  done
  say "up on $HOST:$PORT (pid $pid, ready in $((SECONDS - start))s; logs in $LOGS)"
}

cmd_down() {
  take_lock
  local pid
  if ! pid="$(pid_alive)"; then
    rm -f "$PIDFILE"
    say "not running"
    return 0
  fi
  say "stopping (pid $pid) ..."
  stop_pid "$pid"
  say "stopped"
}

cmd_status() {
  local pid
  if pid="$(pid_alive)"; then
    say "running (pid $pid) on $(cat "$STATE/kafka.endpoint" 2>/dev/null || echo "$HOST:$PORT"); data $DATA"
    return 0
  fi
  say "not running"
  return 3
}

cmd_run() {
  [[ $# -ge 1 ]] || { usage; exit 2; }
  check_java
  compgen -G "$LIB/kafka_2.13-*.jar" >/dev/null || die "no jars in $LIB yet: run '$0 up' first"
  run_tool "$@"
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  run) shift; cmd_run "$@" ;;
  -h|--help|help) usage ;;
  *) usage; exit 2 ;;
esac
