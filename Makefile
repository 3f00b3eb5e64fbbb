# Two entry points for a fresh machine: `make demo` (main job) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast install clean results results-kdv results-ks-cons results-mean results-handback \
	results-dimension results-capacity results-kolmogorov results-query-synthesis study-authors

RUNTIME := $(VENV)/.runtime

# The runtime alone (what the demo needs), then the test extras; both at the versions of
# constraints.txt, so every install of a commit is the same.
$(RUNTIME): setup.py constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "error: qsal_jax needs Python >= 3.11, but $(PYTHON) is " + sys.version.split()[0] + "; run make PYTHON=python3.11 (or newer)")'
	@echo "creating $(VENV) and installing qsal_jax with its runtime dependencies (constraints.txt; a few minutes the first time)"
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -c constraints.txt pip
	$(PY) -m pip install --quiet -c constraints.txt -e .
	touch $(RUNTIME)

$(STAMP): $(RUNTIME)
	@echo "installing the test dependencies (constraints.txt)"
	$(PY) -m pip install --quiet -c constraints.txt -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(RUNTIME)
	$(PY) scripts/quickstart.py --workdir runs/quickstart

# Two workers, each test file on one of them (a file's module fixtures are built once).
test: $(STAMP)
	$(PY) -m pytest -q -n 2 --dist loadfile

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

# Keeping the mean: variants of online Breed and OGAS beside the Uniform runs of the tables above
# (authors' protocol). The hand-back step 360 is the last quarter of the 480 training steps.
Q := $(PY) scripts/quickstart.py --seeds=$(SEEDS)
results-mean: $(STAMP)
	$(Q) --workdir runs/results/kdv_breed_is --strategies=breed_online --label=importance-weighted --set=train.importance_clip=10 --baseline_runs=runs/results/kdv
	$(Q) --workdir runs/results/kdv_ogas_is --strategies=ogas --label=importance-weighted --set=train.importance_clip=10 --baseline_runs=runs/results/kdv
	$(Q) --workdir runs/results/kdv_breed_amax035 --strategies=breed_online --label="alpha_max 0.35" --set=strategy.settings.alpha_max=0.35 --baseline_runs=runs/results/kdv
	$(Q) --workdir runs/results/kdv_breed_handback --strategies=breed_online --label="hand-back" --set=strategy.settings.handback_step=360,strategy.settings.handback_alpha=0.0 --baseline_runs=runs/results/kdv
	$(Q) --workdir runs/results/kdv_breed_paper --strategies=breed_online --label=paper --config_args=paper --baseline_runs=runs/results/kdv
	$(Q) --workdir runs/results/ks_cons_breed_is --config_args=ks_conservative --strategies=breed_online --label=importance-weighted --set=train.importance_clip=10 --baseline_runs=runs/results/ks_cons
	$(Q) --workdir runs/results/ks_cons_ogas_is --config_args=ks_conservative --strategies=ogas --label=importance-weighted --set=train.importance_clip=10 --baseline_runs=runs/results/ks_cons
	$(Q) --workdir runs/results/ks_cons_breed_amax035 --config_args=ks_conservative --strategies=breed_online --label="alpha_max 0.35" --set=strategy.settings.alpha_max=0.35 --baseline_runs=runs/results/ks_cons

# Confirmation of the hand-back variant on fresh seeds 5-9 (Uniform and hand-back), and on KS.
results-handback: $(STAMP)
	$(Q) --first_seed=5 --workdir runs/results/kdv_confirm --strategies=uniform
	$(Q) --first_seed=5 --workdir runs/results/kdv_confirm_handback --strategies=breed_online --label="hand-back" --set=strategy.settings.handback_step=360,strategy.settings.handback_alpha=0.0 --baseline_runs=runs/results/kdv_confirm
	$(Q) --workdir runs/results/ks_cons_breed_handback --config_args=ks_conservative --strategies=breed_online --label="hand-back" --set=strategy.settings.handback_step=360,strategy.settings.handback_alpha=0.0 --baseline_runs=runs/results/ks_cons

# The dimension sweep (Uniform, Breed, OGAS, SBAL at D = 5, 17, 65, 257) and the capacity sweep
# (Uniform and Breed on KdV with FNOs of 9k/79k/550k and ViTs of 17k/448k parameters).
results-dimension: $(STAMP)
	$(PY) scripts/sweep.py --sweep=dimension --workdir runs/results/dimension_sweep --seeds=$(SEEDS)

results-capacity: $(STAMP)
	$(PY) scripts/sweep.py --sweep=capacity --workdir runs/results/capacity_sweep --seeds=$(SEEDS)

# Kolmogorov flow (2D Navier–Stokes, 65-dim λ): Uniform, Breed and OGAS.
# Query synthesis by gradient against Uniform, online Breed and OGAS at 480 simulations, both
# protocols, KdV and conservative KS (RESULTS.md, "Query synthesis by gradient").
QS := uniform,breed_online,ogas,adversarial,residual
results-query-synthesis: $(STAMP)
	$(Q) --workdir runs/results/qs_kdv --strategies=$(QS) --set=plots=False
	$(Q) --workdir runs/results/qs_ks_cons --config_args=ks_conservative --strategies=$(QS) --set=plots=False
	$(Q) --workdir runs/results/qs_kdv_nrmse --config_args=nrmse --strategies=$(QS) --set=plots=False
	$(Q) --workdir runs/results/qs_ks_cons_nrmse --config_args=ks_conservative,nrmse --strategies=$(QS) --set=plots=False

# The authors' regime (5,000 simulations per run, ~3-9 min each on one core): runs missing from
# the committed records under docs/results/runs/ are run and recorded, then each study's report.
study-authors: $(STAMP)
	$(PY) scripts/study.py --study=authors_kdv
	$(PY) scripts/study.py --study=authors_ks_cons
	$(PY) scripts/study.py --study=authors_highd
	$(PY) scripts/study.py --study=authors_ks_cons_unguided
	$(PY) scripts/study.py --study=authors_kdv_confirm
	$(PY) scripts/study.py --study=authors_highd_confirm

results-kolmogorov: $(STAMP)
	$(PY) scripts/quickstart.py --config configs/online_2d.py --config_args=kolmogorov \
		--strategies=uniform,breed,ogas --seeds=$(SEEDS) --workdir runs/results/kolmogorov

results: results-kdv results-ks-cons results-mean results-handback results-dimension results-capacity \
	results-kolmogorov

clean:
	rm -rf $(VENV) runs *.egg-info
