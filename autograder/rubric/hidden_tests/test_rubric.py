"""One test per rubric check of grading.toml (parametrized in conftest), each calling its plain function."""

from autograder.rubric import checks


def test_check(check, artifacts):
    checks.run_check(artifacts[check.question], check.function, check.params)
