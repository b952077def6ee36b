# VideoP2R — the two commands a new user runs: `make demo` and `make test`.
# Both install what they need (idempotent: seconds when nothing changed).

PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
export PATH := $(CURDIR)/.tools/bin:$(PATH)

.PHONY: install tools test test-fast demo bench rehearsal replication clean

install: $(STAMP)

# Everything pinned in requirements.lock (torch/torchvision come from the local wheel files
# pip is configured to find); the project itself is installed editable without deps.
$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.lock
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

# External tools for the integration tests (helm, promtool/prometheus, ...). Each script
# installs its tool where it can and says what is missing otherwise; tests skip by name.
tools:
	@for script in infra/tools/*.sh; do [ -f "$$script" ] && bash "$$script" || true; done

test: install tools
	$(BIN)/python -m pytest -q

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow and not integration"

demo: install
	bash infra/demo.sh

# The cluster rehearsal (as root): the rendered chart's pods as processes in their own network
# namespaces, a PA-GRPO RayJob through them; report in runs/rehearsal/ (infra/rehearsal/__main__.py
# lists REHEARSAL_STEPS, REHEARSAL_FAULTS, ...).
rehearsal: install tools
	$(BIN)/python -m infra.rehearsal

# The replication study (configs/replication.yaml; REPLICATION_SEEDS=0,1,2 picks the seeds):
# runs/replication/report.md, results.json and the plots. <= 60 min on 2 idle cores.
replication: install
	$(BIN)/python -m videop2r.replication --config configs/replication.yaml --out runs/replication

bench: install
	@for script in bench/*.py; do echo "== $$script"; $(BIN)/python "$$script" || exit 1; done

clean:
	rm -rf runs .pytest_cache .hypothesis
