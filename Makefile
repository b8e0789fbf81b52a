# The lab's entry points. `make experiments` and `make test` install what they need.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
JARS   := .lab/ivy/.resolved-stamp
ARCHIVE := .lab/jvm/.written-stamp
PROFILE ?= standard
VERIFY_ROWS ?= 20000

.DEFAULT_GOAL := help
.PHONY: help setup jars lint test test-crash test-e2e test-fast experiments soak verify kafka-up kafka-down cluster-up cluster-down clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP) $(JARS) $(ARCHIVE) ## create .venv, install the pinned packages, the JVM jars and the JVM's class archive

$(JARS): $(STAMP) shared/spark.py
	$(BIN)/lab setup --jars
	touch $(JARS)

# the driver JVM's class-data-sharing archive: every later JVM starts 4-8 s sooner
$(ARCHIVE): $(JARS) shared/spark.py
	$(BIN)/lab setup --class-archive
	touch $(ARCHIVE)

jars: ## resolve the Delta and Kafka connector jars from Maven Central again (and write the class archive)
	$(BIN)/lab setup
	touch $(JARS) $(ARCHIVE)

lint: setup ## ruff (lint and format check) and mypy over the code
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python scripts/typecheck.py

test: setup lint ## ruff and mypy, then every test but the random-kill runs; installs headless Chromium if it can; starts (then stops) the Kafka broker and Spark cluster it needs
	bash scripts/chromium.sh
	bash scripts/with-services.sh $(BIN)/pytest -m "not crash and not e2e"

test-crash: setup ## the random-kill runs: each build killed ten times at random moments (CI runs them too)
	bash scripts/with-services.sh $(BIN)/pytest -m crash

test-e2e: setup ## every step of `lab experiments` end to end on a small input (CI runs it too)
	$(BIN)/pytest -m e2e

test-fast: setup ## the quick tests only (skips the slow end-to-end runs)
	$(BIN)/pytest -m "not slow"

experiments: setup ## the whole lab (PROFILE=standard by default; quick, full); writes reports/<run-id>/
	$(BIN)/lab experiments --profile $(PROFILE)

soak: setup ## the soak profile: the throughput step, then each build following a replay at half its sustainable throughput for 30 minutes (about 2 hours on 2 cores)
	$(BIN)/lab experiments --profile soak

verify: setup ## generate data/verify/input (VERIFY_ROWS lines), run every build, compare with the oracle
	$(BIN)/lab generate --rows $(VERIFY_ROWS) --out data/verify/input
	$(BIN)/lab verify --input data/verify/input --workdir data/verify/work

kafka-up: ## start a single-node KRaft Kafka broker on 127.0.0.1:9092
	bash scripts/kafka.sh up

kafka-down: ## stop the broker
	bash scripts/kafka.sh down

cluster-up: setup ## start a Spark standalone master and worker on 127.0.0.1
	bash scripts/spark-cluster.sh up

cluster-down: ## stop the standalone cluster
	bash scripts/spark-cluster.sh down

clean: ## remove generated data and work folders (keeps .venv and reports)
	rm -rf data .lab/work
