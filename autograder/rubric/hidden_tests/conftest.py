"""Fixtures of the hidden suite: each question's artifacts, built in this clean process."""

import json
from pathlib import Path

import pytest

from autograder.rubric.artifacts import load_question
from autograder.core.config import load_config
from autograder.core.mnist_data import shared_mnist
from autograder.rubric import stored
from autograder.rubric.measures import measured


def pytest_addoption(parser):
    group = parser.getgroup("autograder")
    group.addoption("--capture-dir", help="directory of the captured artifacts")
    group.addoption("--grading-config", default=None, help="path of grading.toml")
    group.addoption("--execution", default=None, help="JSON of the questions that failed to run")
    group.addoption("--measurements", default=None, help="where to write what was measured")
    group.addoption("--public-only", action="store_true", help="run only the checks students may see")
    group.addoption("--artifacts-in", default=None, help="the questions' artifacts as stored (rubric/stored.py): "
                    "used instead of the capture")
    group.addoption("--artifacts-out", default=None, help="where to store the questions' artifacts")


def pytest_generate_tests(metafunc):
    if "check" in metafunc.fixturenames:
        config = load_config(metafunc.config.getoption("--grading-config"))
        rubric = (config.public() if metafunc.config.getoption("--public-only") else config).checks
        metafunc.parametrize("check", rubric, ids=[c.number for c in rubric])


@pytest.fixture(scope="session")
def config(pytestconfig):
    return load_config(pytestconfig.getoption("--grading-config"))


@pytest.fixture(scope="session")
def artifacts(pytestconfig, config):
    capture = Path(pytestconfig.getoption("--capture-dir"))
    execution = pytestconfig.getoption("--execution")
    failed = json.loads(Path(execution).read_text()).get("failed", {}) if execution else {}
    mnist = shared_mnist()
    given, keep = pytestconfig.getoption("--artifacts-in"), pytestconfig.getoption("--artifacts-out")
    if given:
        arts = stored.loads(Path(given).read_text(encoding="utf-8"))
    else:
        arts = {q: load_question(capture, q, mnist, failure=failed.get(q), contamination=config.contamination)
                for q in config.question_ids}
    if keep:
        Path(keep).write_text(stored.dumps(arts), encoding="utf-8")
    out = pytestconfig.getoption("--measurements")
    if out:
        Path(out).write_text(json.dumps({q: measured(a, mnist.y_test).to_dict() for q, a in arts.items()},
                                        ensure_ascii=False, indent=1))
    return arts
