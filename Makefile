# Both entry points build the venv by themselves from the pinned requirements (tools/ensure-venv):
# with PYTHON if given, else the newest supported python3.X on the PATH.
PYTHON ?=
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: venv demo test smoke lock docs test-otter-docker release calibrate bench clean

venv:
	@tools/ensure-venv $(VENV) $(PYTHON)

demo: venv
	$(PY) -m autograder demo

test: venv
	$(PY) -m pytest

# A short end-to-end check of an install: release, then grade the solution and the template (CI runs it with
# a second interpreter, Debian's python3.11).
smoke: venv
	$(PY) -m pytest -n 0 -p no:cacheprovider tests/smoke.py

# Regenerates requirements.txt from pyproject.toml: one universal lock for every Python requires-python admits.
lock: venv
	$(VENV)/bin/uv pip compile pyproject.toml --universal --python-version 3.11.0 --fork-strategy fewest \
		--extra dev --no-annotate -o requirements.txt

# The documentation site (MkDocs, sources in docs/) into site/; make test runs the same strict build.
docs: venv
	$(VENV)/bin/mkdocs build --strict --site-dir site

# Opt-in, not part of `test`: the real `otter grade` (Docker with buildx, network during the image build).
# OTTER_BASE_IMAGE picks the image otter builds on (default: otter's own, ubuntu:22.04).
test-otter-docker: venv
	@docker info >/dev/null 2>&1 && docker buildx version >/dev/null 2>&1 || \
		{ echo "test-otter-docker needs a running Docker engine and the buildx plugin"; exit 1; }
	AUTOGRADER_OTTER_DOCKER=1 $(PY) -m pytest \
		tests/test_otter.py::test_otter_grade_in_docker_gives_the_expected_question_scores

release: venv
	$(PY) -m autograder release

# Its own command, not part of `test`: prints what grading costs here.
bench: venv
	$(PY) benchmarks/bench.py

calibrate: venv
	$(PY) -m autograder.cli.calibrate

clean:
	rm -rf $(VENV) .cache .pytest_cache site
