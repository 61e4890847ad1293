# Set-up is part of every target: a fresh clone needs only `make demo` or `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench bench-peers clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# PyTorch first and pinned (torch==2.13.0): any other spec pulls gigabytes of CUDA wheels.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/dlprov demo

test: $(STAMP)
	$(BIN)/pytest -q

# Each script prints its report (kept in benchmarks/out/NAME.txt) and writes its figures
# (NAME.json) and plots (benchmarks/plots/); report.py then writes benchmarks/RESULTS.md.
# About 20-30 minutes on 2 cores, most of it building the 10,000-execution store once
# (cached in benchmarks/.cache/) and the peers' training rounds.
BENCH_OUT := benchmarks/out
PLOTS := benchmarks/plots
BENCH_PG ?= postgresql://postgres@127.0.0.1:5432/test

bench: $(STAMP) bench-peers
	mkdir -p $(BENCH_OUT) $(PLOTS)
	$(BIN)/python benchmarks/overhead.py --json $(BENCH_OUT)/overhead.json \
		--plot $(PLOTS)/overhead.png > $(BENCH_OUT)/overhead.txt
	test ! -f $(PEERS_STAMP) || $(PEERS)/bin/python benchmarks/peers.py \
		--json $(BENCH_OUT)/peers.json --plot $(PLOTS)/peers.png > $(BENCH_OUT)/peers.txt
	$(BIN)/python benchmarks/ingest.py --json $(BENCH_OUT)/ingest.json > $(BENCH_OUT)/ingest.txt
	$(BIN)/python benchmarks/queries.py --json $(BENCH_OUT)/queries.json \
		--plot $(PLOTS)/queries.png --plans benchmarks/PLANS.md > $(BENCH_OUT)/queries.txt
	$(BIN)/python benchmarks/queries.py --store $(BENCH_PG) --repeats 5 \
		--json $(BENCH_OUT)/queries_postgresql.json \
		--plans benchmarks/PLANS-postgresql.md > $(BENCH_OUT)/queries_postgresql.txt \
		|| echo "bench: no PostgreSQL at $(BENCH_PG); its query figures skipped"
	$(BIN)/python benchmarks/export.py --json $(BENCH_OUT)/export.json > $(BENCH_OUT)/export.txt
	$(BIN)/python benchmarks/export_stream.py --executions 1000 \
		--json $(BENCH_OUT)/export_stream.json > $(BENCH_OUT)/export_stream.txt
	$(BIN)/python benchmarks/faults.py --faults 50 --json $(BENCH_OUT)/faults.json > $(BENCH_OUT)/faults.txt
	$(BIN)/python benchmarks/imports.py --json $(BENCH_OUT)/imports.json > $(BENCH_OUT)/imports.txt
	$(BIN)/python benchmarks/cli_startup.py --json $(BENCH_OUT)/cli_startup.json > $(BENCH_OUT)/cli_startup.txt
	$(BIN)/python benchmarks/ui.py $$(test -f $(PEERS_STAMP) && echo --mlflow) --json $(BENCH_OUT)/ui.json > $(BENCH_OUT)/ui.txt
	$(BIN)/python benchmarks/report.py $(BENCH_OUT) -o benchmarks/RESULTS.md

# MLflow and yProv4ML live in their own venv, never in the project's. torch==2.13.0 goes in
# first and stays (a constraints file); yprov4ml goes in with --no-deps (it asks for
# torchvision, which does not import beside PyTorch 2.13.0). If the venv cannot be built,
# `make bench` goes on without peers.py.
PEERS := benchmarks/.venv-peers
PEERS_STAMP := $(PEERS)/.installed

bench-peers: $(STAMP)
	$(MAKE) $(PEERS_STAMP) || echo "bench-peers: could not build $(PEERS); peers.py skipped"

$(PEERS_STAMP): pyproject.toml benchmarks/requirements-peers.txt benchmarks/requirements-peers-nodeps.txt \
		benchmarks/constraints-peers.txt
	test -x $(PEERS)/bin/python || $(PYTHON) -m venv $(PEERS)
	$(PEERS)/bin/pip install -q torch==2.13.0
	$(PEERS)/bin/pip install -q -c benchmarks/constraints-peers.txt -e '.[demo]'
	$(PEERS)/bin/pip install -q -c benchmarks/constraints-peers.txt -r benchmarks/requirements-peers.txt
	$(PEERS)/bin/pip install -q --no-deps -r benchmarks/requirements-peers-nodeps.txt
	$(PEERS)/bin/python -c "import torch, mlflow, yprov4ml; assert torch.__version__.startswith('2.13.0')"  # torch==2.13.0 kept
	touch $(PEERS_STAMP)

clean:
	rm -rf $(VENV) $(PEERS) $(BENCH_OUT) demo-output dlprov.db dlprov.db-wal dlprov.db-shm dlprov.db.spool
