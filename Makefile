# `make demo` and `make test` create .venv and install on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test benchmark clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[dev,export]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) tools/demo.py

test: $(STAMP)
	$(PY) -m pytest -q

benchmark: $(STAMP)
	$(PY) tools/benchmark.py backbone
	$(PY) tools/benchmark.py coco-eval
	$(PY) tools/benchmark.py detector-inference
	$(PY) tools/benchmark.py detector-train
	$(PY) tools/benchmark.py roi-align
	$(PY) tools/benchmark.py data

clean:
	rm -rf $(VENV) build *.egg-info
