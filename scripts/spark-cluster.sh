#!/usr/bin/env bash
# A Spark standalone cluster (one master, two workers of one core each) on 127.0.0.1, run from the pyspark
# pip wheel in the project's .venv (its jars/, bin/ and sbin/spark-daemon.sh). State lives in
# <repo>/.lab/spark-cluster/: logs/, pids/, work/ (executor dirs), conf/ (our SPARK_CONF_DIR,
# so nothing is read from or written to site-packages).
#
# Usage: scripts/spark-cluster.sh up|down|status
#   then: SparkSession.builder.master("spark://127.0.0.1:7077")
#
# Environment:
#   SPARK_MASTER_PORT (7077)  SPARK_MASTER_WEBUI_PORT (8080)  SPARK_WORKER_WEBUI_PORT (8081)
#   SPARK_WORKERS (2: how many workers)  SPARK_WORKER_CORES (1 each)  SPARK_WORKER_MEMORY (3g each)
#   (the worker web UIs: SPARK_WORKER_WEBUI_PORT, +1, ...)  SPARK_CLUSTER_START_TIMEOUT (60 s)
#   SPARK_CLUSTER_STOP_TIMEOUT (30 s)  VENV (<repo>/.venv)  JAVA_HOME (else `java` on PATH; 17+)
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
STATE="$ROOT/.lab/spark-cluster"
VENV_DIR="${VENV:-$ROOT/.venv}"
[[ "$VENV_DIR" = /* ]] || VENV_DIR="$ROOT/$VENV_DIR"
PY="$VENV_DIR/bin/python"

HOST=127.0.0.1
MASTER_PORT="${SPARK_MASTER_PORT:-7077}"
WEBUI_PORT="${SPARK_MASTER_WEBUI_PORT:-8080}"
WORKER_WEBUI_PORT="${SPARK_WORKER_WEBUI_PORT:-8081}"
WORKERS="${SPARK_WORKERS:-2}"
WORKER_CORES="${SPARK_WORKER_CORES:-1}"
WORKER_MEMORY="${SPARK_WORKER_MEMORY:-3g}"
START_TIMEOUT="${SPARK_CLUSTER_START_TIMEOUT:-60}"
STOP_TIMEOUT="${SPARK_CLUSTER_STOP_TIMEOUT:-30}"
MASTER_URL="spark://$HOST:$MASTER_PORT"
MASTER_CLASS=org.apache.spark.deploy.master.Master
WORKER_CLASS=org.apache.spark.deploy.worker.Worker
IDENT=lab   # SPARK_IDENT_STRING: fixes the pid/log file names

# what spark-daemon.sh reads; exported so the daemons (and the executors they start) see them
export SPARK_LOG_DIR="$STATE/logs"
export SPARK_PID_DIR="$STATE/pids"
export SPARK_WORKER_DIR="$STATE/work"
export SPARK_CONF_DIR="$STATE/conf"
export SPARK_IDENT_STRING="$IDENT"
export SPARK_LOCAL_IP="$HOST"
export SPARK_LOCAL_HOSTNAME="$HOST"
export PYSPARK_PYTHON="$PY"
# drop the work dirs of finished applications after a day (checked every 30 min)
export SPARK_WORKER_OPTS="${SPARK_WORKER_OPTS:-} -Dspark.worker.cleanup.enabled=true -Dspark.worker.cleanup.appDataTtl=86400"

MASTER_PID="$SPARK_PID_DIR/spark-$IDENT-$MASTER_CLASS-1.pid"
worker_pidfile() { echo "$SPARK_PID_DIR/spark-$IDENT-$WORKER_CLASS-$1.pid"; }  # worker_pidfile N (1, 2, ...)

usage() {
  cat >&2 <<EOF
usage: $(basename "$0") up|down|status
  up      start a master on $MASTER_URL (web UI http://$HOST:$WEBUI_PORT) and $WORKERS worker(s)
          ($WORKER_CORES core(s), $WORKER_MEMORY each), executors running $PY
  down    stop them
  status  exit 0 if the master and every worker run, 3 if not
state: $STATE
EOF
}

say() { echo "spark-cluster: $*"; }
die() { echo "spark-cluster: error: $*" >&2; exit 1; }
# shellcheck source=lib.sh
source "$SCRIPT_DIR/lib.sh"

# ---------------------------------------------------------------- helpers
daemon_pid() {  # daemon_pid PIDFILE CLASS: the live pid, or fail
  live_pid "$1" "$2"
}

validate() {
  local p
  for p in "$MASTER_PORT" "$WEBUI_PORT" "$WORKER_WEBUI_PORT"; do
    [[ "$p" =~ ^[0-9]+$ && "$p" -gt 0 && "$p" -lt 65536 ]] || die "bad port '$p'"
  done
  [[ "$WORKER_CORES" =~ ^[1-9][0-9]*$ ]] || die "bad SPARK_WORKER_CORES '$WORKER_CORES'"
  [[ "$WORKERS" =~ ^[1-9]$ ]] || die "bad SPARK_WORKERS '$WORKERS' (1-9)"
  local n
  for (( n = 0; n < WORKERS; n++ )); do
    (( WORKER_WEBUI_PORT + n < 65536 )) || die "bad SPARK_WORKER_WEBUI_PORT '$WORKER_WEBUI_PORT'"
  done
  [[ "$WORKER_MEMORY" =~ ^[0-9]+[mMgG]$ ]] || die "bad SPARK_WORKER_MEMORY '$WORKER_MEMORY' (like 4g or 2048m)"
}

find_spark_home() {
  [[ -x "$PY" ]] || die "no virtualenv python at $PY: run 'make setup' first (or set VENV)"
  SPARK_HOME="$("$PY" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))' 2>/dev/null)" \
    || die "pyspark is not installed in $VENV_DIR: run 'make setup' first"
  export SPARK_HOME
  [[ -f "$SPARK_HOME/sbin/spark-daemon.sh" ]] || die "$SPARK_HOME/sbin/spark-daemon.sh missing: this pyspark wheel has no sbin/"
  [[ -f "$SPARK_HOME/bin/spark-class" && -d "$SPARK_HOME/jars" ]] || die "$SPARK_HOME has no bin/spark-class or jars/"
  # spark-daemon.sh calls bin/spark-class directly, so it must be executable; a wheel may lose
  # the mode bits. Then run from a private copy of bin/ + sbin/ (the jars stay in site-packages).
  if [[ ! -x "$SPARK_HOME/bin/spark-class" ]]; then
    local shadow="$STATE/spark-home"
    rm -rf "$shadow"; mkdir -p "$shadow"
    cp -r "$SPARK_HOME/bin" "$SPARK_HOME/sbin" "$shadow/"
    chmod +x "$shadow"/bin/* "$shadow"/sbin/*
    ln -s "$SPARK_HOME/jars" "$shadow/jars"
    [[ -d "$SPARK_HOME/python" ]] && ln -s "$SPARK_HOME/python" "$shadow/python"
    SPARK_HOME="$shadow"
  fi
}

check_java() {
  local java v major
  if [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then java="$JAVA_HOME/bin/java"; else java=java; fi
  command -v "$java" >/dev/null 2>&1 || die "java not found (install Java 17+ or set JAVA_HOME)"
  v="$("$java" -version 2>&1 | awk -F'"' '/version/{print $2; exit}')"
  major="${v%%.*}"
  [[ "$major" =~ ^[0-9]+$ && "$major" -ge 17 ]] || die "Spark 4 needs Java 17+, found '$v' ($java)"
}

take_lock() {
  mkdir -p "$STATE"
  if command -v flock >/dev/null 2>&1; then
    exec 9>"$STATE/.lock"
    flock -w 120 9 || die "could not lock $STATE/.lock (another spark-cluster.sh still running?)"
  fi
}

log_tail() {
  local f
  for f in "$SPARK_LOG_DIR"/spark-"$IDENT"-*-"$HOSTNAME".out; do
    [[ -s "$f" ]] || continue
    echo "----- last lines of $f -----" >&2
    tail -n 25 "$f" >&2
  done
}

# prints "ok <workers>" when the master is ALIVE at our URL with $WORKERS ALIVE workers, else a reason
cluster_state() {
  "$PY" - "http://$HOST:$WEBUI_PORT/json/" "$MASTER_URL" "$WORKERS" <<'EOF' 2>&1 || true
import json, sys, urllib.request
page, url, expected = sys.argv[1], sys.argv[2], int(sys.argv[3])
try:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy
    with opener.open(page, timeout=3) as r:
        doc = json.load(r)
except Exception as e:
    print("master web UI not answering on %s (%s)" % (page, e))
    sys.exit(0)
alive = [w for w in doc.get("workers", []) if w.get("state") == "ALIVE"]
if doc.get("status") != "ALIVE":
    print("master status is %s" % doc.get("status"))
elif doc.get("url") != url:
    print("master is at %s, expected %s" % (doc.get("url"), url))
elif len(alive) < expected:
    print("%d of %d workers ALIVE so far" % (len(alive), expected))
else:
    print("ok " + ", ".join("%s cores=%s memory=%sMB" % (w.get("id"), w.get("cores"), w.get("memory")) for w in alive))
EOF
}

load_running_ports() {  # a running master keeps the ports it was started with
  local k v
  [[ -f "$STATE/running-ports" ]] || return 0
  while IFS='=' read -r k v; do
    [[ "$v" =~ ^[0-9]+$ ]] || continue
    case "$k" in
      MASTER_PORT) MASTER_PORT="$v" ;;
      WEBUI_PORT) WEBUI_PORT="$v" ;;
    esac
  done <"$STATE/running-ports"
  MASTER_URL="spark://$HOST:$MASTER_PORT"
}

stop_daemon() {  # stop_daemon PIDFILE CLASS NAME: SIGTERM, wait, SIGKILL
  local f="$1" cls="$2" name="$3" pid
  if ! pid="$(daemon_pid "$f" "$cls")"; then
    rm -f "$f"
    return 0
  fi
  say "stopping $name (pid $pid) ..."
  terminate_pid "$pid" "$name"
  rm -f "$f"
}

start_daemon() {  # start_daemon CLASS ARGS...
  # 9>&-: the daemon must not inherit our lock; bash: the sbin scripts may lack +x
  bash "$SPARK_HOME/sbin/spark-daemon.sh" start "$@" 9>&- >>"$SPARK_LOG_DIR/daemon-launch.log" 2>&1 \
    || { tail -n 20 "$SPARK_LOG_DIR/daemon-launch.log" >&2; die "spark-daemon.sh start $1 failed"; }
}

# ---------------------------------------------------------------- commands
live_workers() {  # the numbers of the workers (of any count started before) that run
  local f n
  for f in "$SPARK_PID_DIR"/spark-"$IDENT"-"$WORKER_CLASS"-*.pid; do
    [[ -e "$f" ]] || continue
    n="${f##*-}"; n="${n%.pid}"
    daemon_pid "$f" "$WORKER_CLASS" >/dev/null && echo "$n"
  done
  return 0
}

stop_workers() {
  local f n
  for f in "$SPARK_PID_DIR"/spark-"$IDENT"-"$WORKER_CLASS"-*.pid; do
    [[ -e "$f" ]] || continue
    n="${f##*-}"; n="${n%.pid}"
    stop_daemon "$f" "$WORKER_CLASS" "worker $n"
  done
}

cmd_up() {
  validate
  take_lock
  local mpid="" state n running
  mpid="$(daemon_pid "$MASTER_PID" "$MASTER_CLASS")" || mpid=""
  running="$(live_workers | wc -l)"
  find_spark_home
  [[ -n "$mpid" ]] && load_running_ports
  if [[ -n "$mpid" ]] && (( running > 0 )); then
    state="$(cluster_state)"
    if [[ "$state" == ok* ]]; then
      say "already running: $MASTER_URL (master pid $mpid), workers: ${state#ok }"
      return 0
    fi
  fi
  check_java
  mkdir -p "$SPARK_LOG_DIR" "$SPARK_PID_DIR" "$SPARK_WORKER_DIR" "$SPARK_CONF_DIR"
  : >"$SPARK_LOG_DIR/daemon-launch.log"

  if [[ -z "$mpid" ]]; then
    rm -f "$MASTER_PID"
    # Spark silently moves to the next port when one is taken: refuse instead
    port_open "$HOST" "$MASTER_PORT" && die "port $HOST:$MASTER_PORT is in use by another process (another Spark master?). Stop it or set SPARK_MASTER_PORT."
    port_open "$HOST" "$WEBUI_PORT" && die "port $HOST:$WEBUI_PORT is in use by another process. Stop it or set SPARK_MASTER_WEBUI_PORT."
    say "starting master on $MASTER_URL (web UI http://$HOST:$WEBUI_PORT) ..."
    start_daemon "$MASTER_CLASS" 1 --host "$HOST" --port "$MASTER_PORT" --webui-port "$WEBUI_PORT"
    printf 'MASTER_PORT=%s\nWEBUI_PORT=%s\n' "$MASTER_PORT" "$WEBUI_PORT" >"$STATE/running-ports"
  fi
  # a worker left from a start with another count or size: stop it, so the cluster is the one asked for
  (( running > 0 )) && { say "restarting the workers as $WORKERS of $WORKER_CORES core(s)"; stop_workers; }
  for (( n = 1; n <= WORKERS; n++ )); do
    rm -f "$(worker_pidfile "$n")"
    say "starting worker $n ($WORKER_CORES core(s), $WORKER_MEMORY) ..."
    mkdir -p "$SPARK_WORKER_DIR/worker-$n"
    start_daemon "$WORKER_CLASS" "$n" --host "$HOST" --webui-port "$((WORKER_WEBUI_PORT + n - 1))" \
      --cores "$WORKER_CORES" --memory "$WORKER_MEMORY" --work-dir "$SPARK_WORKER_DIR/worker-$n" "$MASTER_URL"
  done

  local start=$SECONDS
  while :; do
    mpid="$(daemon_pid "$MASTER_PID" "$MASTER_CLASS")" || mpid=""
    running="$(live_workers | wc -l)"
    if [[ -z "$mpid" ]] || (( running < WORKERS )); then
      log_tail
      [[ -z "$mpid" ]] && say "the master is not running"
      (( running < WORKERS )) && say "$running of $WORKERS workers running"
      stop_workers
      stop_daemon "$MASTER_PID" "$MASTER_CLASS" master
      die "the cluster did not start (logs in $SPARK_LOG_DIR)"
    fi
    state="$(cluster_state)"
    [[ "$state" == ok* ]] && break
    if (( SECONDS - start >= START_TIMEOUT )); then
      log_tail
      stop_workers
      stop_daemon "$MASTER_PID" "$MASTER_CLASS" master
      die "not every worker ALIVE within ${START_TIMEOUT}s ($state); stopped the cluster (logs in $SPARK_LOG_DIR; a slow machine may need SPARK_CLUSTER_START_TIMEOUT=120)"
    fi
    sleep 1
  done
  say "up: $MASTER_URL (web UI http://$HOST:$WEBUI_PORT), workers: ${state#ok }; ready in $((SECONDS - start))s"
}

cmd_down() {
  take_lock
  local any=0
  [[ -n "$(live_workers)" ]] && any=1
  daemon_pid "$MASTER_PID" "$MASTER_CLASS" >/dev/null && any=1
  stop_workers
  stop_daemon "$MASTER_PID" "$MASTER_CLASS" master
  if (( any )); then say "stopped"; else say "not running"; fi
}

cmd_status() {
  local mpid rc=0 state running
  if mpid="$(daemon_pid "$MASTER_PID" "$MASTER_CLASS")"; then
    load_running_ports
    say "master running (pid $mpid) on $MASTER_URL, web UI http://$HOST:$WEBUI_PORT"
  else
    say "master not running"; rc=3
  fi
  running="$(live_workers | wc -l)"
  say "$running worker(s) running (expected $WORKERS)"
  (( running >= WORKERS )) || rc=3
  if (( rc == 0 )) && [[ -x "$PY" ]]; then
    state="$(cluster_state)"
    say "master reports: $state"
    [[ "$state" == ok* ]] || rc=3
  fi
  return "$rc"
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  -h|--help|help) usage ;;
  *) usage; exit 2 ;;
esac
