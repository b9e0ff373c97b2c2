# Two commands set everything up on a fresh machine:  make demo   and   make test
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test test-slow lint bench fashion-mnist clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $@

# Search a policy on the embedded CIFAR-10 subset (1,000 training images, 30 epochs), then retrain it, none and the
# standards for natural images on 2 seeds and print the comparison (the report lands in autoaug-runs/reports/).
demo: $(BIN)/.installed
	$(BIN)/autoaug search cifar10_small --budget demo --report-seeds 2 --reports autoaug-runs/reports

# the fast suite; PYTEST_ARGS adds pytest options (e.g. PYTEST_ARGS=--durations=25)
test: $(BIN)/.installed
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# the multi-minute tests: kill -9 at every stage, a killed trial worker, a lost MLflow server, read-only storage,
# user data under odd paths, a two-node Ray cluster, the wheel in a fresh venv, the synthetic-data report and ablation
test-slow: $(BIN)/.installed
	$(BIN)/python -m pytest -m slow $(PYTEST_ARGS)

lint: $(BIN)/.installed
	$(BIN)/ruff check .

bench: $(BIN)/.installed
	$(BIN)/python -m pip install -q -e ".[dev,bench]"
	$(BIN)/python benchmarks/bench_augment.py --threads 2 --out reports/benchmarks.md
	$(BIN)/python benchmarks/bench_train.py --compile --out reports/benchmarks.md
	$(BIN)/python benchmarks/bench_search.py --out reports/benchmarks.md

# The real Fashion-MNIST, offline, from Debian's package (needs root).
fashion-mnist:
	apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
