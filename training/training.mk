# Benchmark targets (docs/benchmarks.md). Included by the top Makefile.
#
#   make bench                      quick benchmark of this machine: CSV, JSON, both figures
#   make bench BENCH_ARGS=--full    every thread count, many iterations (for a real box)
#   make bench HOST=user@host       run it on a deployed box over SSH, fetch the results here
#   make bench-models               (re)make the random-weight sweep models (needs TensorFlow)
#   make bench-plot                 overlay every result under bench-results/ on one pair of figures
#   make bench-impsy                the box beside IMPSY on IMPSY's own model (docs/impsy.md)
#
# Remote settings as for deploy: IMPS_SSH_OPTS (e.g. "-p 2222 -i key"), IMPS_PREFIX (/opt/imps).
.PHONY: bench bench-models bench-plot bench-impsy

BENCH_DIR ?= bench-results
BENCH_ARGS ?=
# Time Keras predict() beside TFLite on this machine (local runs only; 0 to skip).
BENCH_KERAS ?= 1
BENCH_KERAS_ARGS ?= --units 64 512 --iterations 100
BENCH_RESULTS ?= $(wildcard $(BENCH_DIR)/*/bench.json)
IMPS_TRAIN := $(WORK)/bin/imps-train

bench: $(WORK)/.installed $(DEVICE)/.installed  ## time predictions, start-up, memory, latency: make bench [HOST=user@host] [BENCH_ARGS=--full]
	@set -euo pipefail; \
	if [ -z "$(HOST)" ]; then \
	  out="$(BENCH_DIR)/$$(hostname)-$$(date +%F)"; \
	  $(DPY) -m imps bench $(BENCH_ARGS) -o "$$out"; \
	  if [ "$(BENCH_KERAS)" = 1 ]; then \
	    echo "== Keras beside TFLite (workstation only)"; \
	    nice $(IMPS_TRAIN) bench-keras -o "$$out" $(BENCH_KERAS_ARGS) 2>/dev/null; \
	  fi; \
	else \
	  read -ra opts <<<"$${IMPS_SSH_OPTS:-}"; opts+=(-o BatchMode=yes -o ConnectTimeout=5); \
	  prefix="$${IMPS_PREFIX:-/opt/imps}"; \
	  if ! err=$$(ssh "$${opts[@]}" "$(HOST)" true 2>&1 </dev/null); then \
	    echo "bench: cannot reach $(HOST) over ssh: $${err:-no answer}" >&2; exit 1; fi; \
	  remote=$$(ssh "$${opts[@]}" "$(HOST)" "test -x $$prefix/current/bin/imps || { echo 'no deployed box at $$prefix/current: make deploy HOST=$(HOST) first' >&2; exit 3; }; mktemp -d /tmp/imps-bench.XXXXXX" </dev/null); \
	  name=$$(ssh "$${opts[@]}" "$(HOST)" 'echo "$$(hostname)-$$(date +%F)"' </dev/null); \
	  echo "== imps bench on $(HOST) ($$prefix/current)"; \
	  status=0; ssh "$${opts[@]}" "$(HOST)" "$$prefix/current/bin/imps bench $(BENCH_ARGS) -o $$remote" </dev/null || status=$$?; \
	  out="$(BENCH_DIR)/$$name"; mkdir -p "$$out"; \
	  rsync -a -e "ssh $${opts[*]}" "$(HOST):$$remote/" "$$out/"; \
	  ssh "$${opts[@]}" "$(HOST)" "rm -rf $$remote" </dev/null || true; \
	  [ "$$status" = 0 ] || { echo "bench: imps bench failed on $(HOST) (exit $$status)" >&2; exit "$$status"; }; \
	  echo "== results of $(HOST) in $$out"; \
	fi; \
	$(IMPS_TRAIN) plot-bench "$$out" -o "$$out"

bench-models: $(WORK)/.installed  ## make the random-weight benchmark models (device/imps/models/bench)
	nice $(IMPS_TRAIN) bench-models -o device/imps/models/bench $(BENCH_MODELS_ARGS)

bench-plot: $(WORK)/.installed  ## overlay results (default: every bench-results/*/bench.json): make bench-plot [BENCH_RESULTS="a.json b.json"]
	@[ -n "$(strip $(BENCH_RESULTS))" ] || { echo "bench-plot: no results in $(BENCH_DIR)/*/bench.json: run make bench first" >&2; exit 1; }
	$(IMPS_TRAIN) plot-bench $(BENCH_RESULTS) -o $(BENCH_DIR)

bench-impsy: $(WORK)/.installed $(DEVICE)/.installed $(IMPSY_ENV)/.installed  ## the box beside IMPSY on IMPSY's own model: per prediction, start-up, memory
	$(IMPS_TRAIN) bench-impsy $(BENCH_IMPSY_ARGS)
