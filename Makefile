# peftlab — the two commands a user needs are `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python
STAMP  := $(VENV)/.peftlab-installed
export PEFTLAB_PROFILE ?= tiny
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false
export MPLBACKEND ?= Agg
# torch's OpenMP threads spin while they wait; when two processes share the cores (pytest + a
# notebook kernel, two grading workers) spinning makes small models ~50× slower. Passive waiting avoids it.
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: setup run test test-fast test-portable rehearse-colab lab student execute data bench lint env clean compare-lr compare-runs lock

## Install the kit and exactly the versions in constraints.txt (the tested environment) into .venv.
setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

## Refresh constraints.txt: resolve pyproject.toml's ranges afresh in a scratch venv and pin what pip chose
## (PINS="transformers==5.23.0" holds a package back). Then `make setup && make execute && make test
## && make test-portable`, and commit constraints.txt with the re-executed notebooks.
LOCK_VENV := .venv-lock
lock:
	rm -rf $(LOCK_VENV)
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install -q --upgrade pip
	$(LOCK_VENV)/bin/python -m pip install -q -e '.[dev]' $(PINS)
	$(LOCK_VENV)/bin/python tools/lock.py constraints.txt
	rm -rf $(LOCK_VENV)

## Execute every solution notebook headless into build/ (HTML with plots) and print a summary, then
## compare every method on the sentiment task over three seeds (build/compare: tables and plots).
run: $(STAMP)
	@test -d solutions || { echo "make run executes solutions/, which a student release does not have: use 'make lab'"; exit 2; }
	$(BIN)/peftlab run --out build
	$(BIN)/peftlab compare --methods all --seeds 0,1,2 --out build/compare --jobs 2

## Every test: unit, parity with peft/bitsandbytes, notebook pipeline, nbval on solutions/.
## (In a student release, which has no tests/: validate the student notebooks with nbval.)
## TEST_JOBS pytest workers (pytest-xdist; the root conftest.py keeps a notebook's cells on one worker), each with
## TEST_THREADS torch threads: the tiny models run faster on one thread per process than on two.
TEST_JOBS    ?= 2
TEST_THREADS ?= 1
test: $(STAMP)
ifneq ($(wildcard tests),)
	OMP_NUM_THREADS=$(TEST_THREADS) $(PY) -m pytest tests solutions --nbval-lax --nbval-current-env \
	  --nbval-cell-timeout=300 -p no:cacheprovider -n $(TEST_JOBS)
else
	$(PY) -m pytest notebooks --nbval-lax --nbval-current-env --nbval-cell-timeout=300 -p no:cacheprovider
endif

## nbval on every solution notebook under CPU kernel paths other than this machine's own: an AVX2 CPU
## (ATEN_CPU_CAPABILITY=avx2, oneDNN and MKL at AVX2) and generic kernels (ATen default, MKL_CBWR=COMPATIBLE).
## Not part of `make test` (about 9 min on 2 cores, measured); run it after `make execute` (docs/notebook-style.md).
PORTABLE_PATHS ?= avx2 generic
test-portable: $(STAMP)
	$(PY) tools/portable.py $(PORTABLE_PATHS) --jobs $(TEST_JOBS)

## Every solution notebook on the `colab` profile, offline: the Hub models replaced by stand-ins of the same
## architectures (klue/bert-base's 12-layer BERT, Qwen2.5-0.5B's GQA Qwen2) at a tiny width, NSMC by a local file of its
## schema (peftlab/standins.py); on CUDA when present, else on the CPU with a device-placement guard. Executed copies
## in build/rehearse (solutions/ is not touched); fails on any error. REHEARSE="02 07" picks notebooks;
## REHEARSE_ARGS="--keep-going" runs on after a failing cell and lists every one. After a change to a notebook's colab
## branch (docs/notebook-style.md).
REHEARSE ?=
REHEARSE_ARGS ?=
rehearse-colab: $(STAMP)
	$(PY) -m peftlab.instructor.rehearse $(REHEARSE) $(REHEARSE_ARGS) --out build/rehearse

## Unit tests only (no notebook execution).
test-fast: $(STAMP)
	$(PY) -m pytest tests -m "not slow" -p no:cacheprovider

## JupyterLab on the student notebooks.
lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/

## Regenerate notebooks/ (student copies) from solutions/, after rendering the points of every heading, rubric
## and week total from the check registry (peftlab/checks: REGISTRY and essays.py) into solutions/.
student: $(STAMP)
	$(BIN)/peftlab points solutions
	$(BIN)/peftlab build-student solutions notebooks

## Re-execute solutions/ in place so their stored outputs are current, then rebuild notebooks/.
execute: $(STAMP)
	$(BIN)/peftlab points solutions
	$(BIN)/peftlab execute solutions
	$(BIN)/peftlab build-student solutions notebooks

## Sweep every method's learning rate on the validation split (grid 3e-4 … 1e-2, extended past an edge
## winner), mean over the tuning seeds 100, 101, once per training-set size the course compares
## (peftlab/compare_lr/sentiment{,_n100,_n1000}.json). Run it after a change of the models or the data,
## then `make compare-runs`.
GUIDE_METHODS := full,lora,dora,waveft,vblora,qlora
compare-lr: $(STAMP)
	rm -rf build/compare_lr
	$(BIN)/peftlab compare --tune-lr --methods all --out build/compare_lr/sentiment & \
	  $(BIN)/peftlab compare --tune-lr --methods $(GUIDE_METHODS) --train-size 100 --out build/compare_lr/sentiment_n100 && \
	  $(BIN)/peftlab compare --tune-lr --methods $(GUIDE_METHODS) --train-size 1000 --out build/compare_lr/sentiment_n1000; \
	  wait
	for n in sentiment sentiment_n100 sentiment_n1000; do cp build/compare_lr/$$n/learning_rates.json peftlab/compare_lr/$$n.json; done

## Recompute the comparisons Week 07 reads (peftlab/compare_runs: cells and pinned configuration only).
## Every method on every training example runs one cell at a time (--jobs 1), so its step times are not
## disturbed by another cell and its three seeds measure the timing noise; the selection-guide runs only
## report accuracy and run two at a time. About 5 min on 2 cores.
compare-runs: $(STAMP)
	rm -rf peftlab/compare_runs/sentiment peftlab/compare_runs/sentiment_n100 peftlab/compare_runs/sentiment_n1000
	$(BIN)/peftlab compare --methods all --seeds 0,1,2 --out peftlab/compare_runs/sentiment --jobs 1
	$(BIN)/peftlab compare --methods $(GUIDE_METHODS) --seeds 0,1,2 --train-size 100 --out peftlab/compare_runs/sentiment_n100 --jobs 2
	$(BIN)/peftlab compare --methods $(GUIDE_METHODS) --seeds 0,1,2 --train-size 1000 --out peftlab/compare_runs/sentiment_n1000 --jobs 2
	cd peftlab/compare_runs && rm -rf */adapters */plots */results.csv */summary.csv

## Rebuild data/ (datasets, tokenizer, tiny pretrained models) from scratch. Takes minutes.
data: $(STAMP)
	$(PY) -m peftlab.datagen --out data

## peftlab layers vs peft layers, side by side, printed as ratios.
bench: $(STAMP)
	$(PY) benchmarks/run.py

lint: $(STAMP)
	$(BIN)/ruff check peftlab tests benchmarks tools

env: $(STAMP)
	$(BIN)/peftlab env

clean:
	rm -rf build .pytest_cache
