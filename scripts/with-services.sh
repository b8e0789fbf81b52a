#!/usr/bin/env bash
# Run a command with the services the integration tests need (the Kafka broker and a
# Spark standalone master + worker), starting those not already running and stopping
# only those it started, whatever the command's outcome.
# Usage: scripts/with-services.sh COMMAND [ARGS...]
set -euo pipefail
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
started=()

cleanup() {
  local status=$?
  for service in "${started[@]}"; do
    bash "$SCRIPT_DIR/$service" down || true
  done
  exit $status
}
trap cleanup EXIT

for service in kafka.sh spark-cluster.sh; do
  if ! bash "$SCRIPT_DIR/$service" status >/dev/null 2>&1; then
    bash "$SCRIPT_DIR/$service" up
    started+=("$service")
  fi
done
export LAB_KAFKA_BOOTSTRAP="${LAB_KAFKA_BOOTSTRAP:-127.0.0.1:${KAFKA_PORT:-9092}}"
export LAB_TEST_CLUSTER_MASTER="${LAB_TEST_CLUSTER_MASTER:-spark://127.0.0.1:${SPARK_MASTER_PORT:-7077}}"
"$@"
