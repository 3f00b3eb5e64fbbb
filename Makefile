# Two entry points for a fresh machine: `make demo` (main job) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast install clean results results-kdv results-ks-cons

$(STAMP): setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) scripts/quickstart.py --workdir runs/quickstart

test: $(STAMP)
	$(PY) -m pytest -q

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

# Every 1D table of RESULTS.md: 5 seeds per strategy, the authors' protocol (MSE objective, nRMSE
# signal) and the nRMSE/nRMSE variant, all scored on the cached 512-trajectory score set.
# Finished runs are reused, so an interrupted target picks up where it stopped.
SEEDS ?= 5
results-kdv: $(STAMP)
	$(PY) scripts/quickstart.py --workdir runs/results/kdv --strategies=uniform,breed_online,ogas --seeds=$(SEEDS)
	$(PY) scripts/quickstart.py --workdir runs/results/kdv_nrmse --config_args=nrmse --strategies=uniform,breed_online,ogas --seeds=$(SEEDS)

results-ks-cons: $(STAMP)
	$(PY) scripts/quickstart.py --workdir runs/results/ks_cons --config_args=ks_conservative --strategies=uniform,breed_online,ogas --seeds=$(SEEDS)
	$(PY) scripts/quickstart.py --workdir runs/results/ks_cons_nrmse --config_args=ks_conservative,nrmse --strategies=uniform,breed_online,ogas --seeds=$(SEEDS)

results: results-kdv results-ks-cons

clean:
	rm -rf $(VENV) runs *.egg-info
