# The README's two commands: `make demo` (the main job on built-in data) and `make test`.
PYTHON ?= python
PIP ?= $(PYTHON) -m pip
export HF_HUB_OFFLINE = 1
export HF_DATASETS_OFFLINE = 1
export HF_EVALUATE_OFFLINE = 1
export TOKENIZERS_PARALLELISM = false

.PHONY: install system-deps test test-fast lint format demo benchmark

system-deps:
	@command -v ffmpeg >/dev/null 2>&1 || { \
	  echo "Installing ffmpeg (needed by torchcodec to decode audio)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg >/dev/null; }

install: system-deps
	$(PIP) install -q -c constraints.txt torch torchcodec
	$(PIP) install -q -c constraints.txt -e ".[training,tests]"
	# hearvalidator declares tensorflow (~1 GB) but needs it only for TF models: install it alone.
	$(PIP) install -q --no-deps hearvalidator==2021.0.2

test: install lint
	$(PYTHON) -m pytest -q tests

# The edit-test loop: everything but the subprocess, multi-process and end-to-end tests (marked `slow`).
test-fast:
	$(PYTHON) -m pytest -q -m "not slow" tests

lint:
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .

format:
	$(PYTHON) -m ruff check --fix .
	$(PYTHON) -m ruff format .

demo: install
	$(PYTHON) examples/demo.py --output_dir outputs/demo

benchmark: install
	$(PYTHON) benchmarks/run.py
