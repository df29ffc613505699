# Both entry points build .venv by themselves from the pinned requirements.
PYTHON ?= python3.11
VENV := .venv
STAMP := $(VENV)/.installed
PY := $(VENV)/bin/python

.PHONY: demo test test-otter-docker release calibrate bench clean

$(STAMP): requirements.txt pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required (set PYTHON=...)"'
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m autograder demo

test: $(STAMP)
	$(PY) -m pytest

# Opt-in, not part of `test`: the real `otter grade` (Docker with buildx, network during the image build).
test-otter-docker: $(STAMP)
	@docker info >/dev/null 2>&1 && docker buildx version >/dev/null 2>&1 || \
		{ echo "test-otter-docker needs a running Docker engine and the buildx plugin"; exit 1; }
	AUTOGRADER_OTTER_DOCKER=1 $(PY) -m pytest \
		tests/test_otter.py::test_otter_grade_in_docker_gives_the_expected_question_scores

release: $(STAMP)
	$(PY) -m autograder release

# Its own command, not part of `test`: prints what grading costs here (README, "Performance").
bench: $(STAMP)
	$(PY) benchmarks/bench.py

calibrate: $(STAMP)
	$(PY) -m autograder.cli.calibrate

clean:
	rm -rf $(VENV) .cache .pytest_cache
