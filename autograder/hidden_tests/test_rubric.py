"""One test per rubric check of grading.toml (parametrized in conftest), each calling its plain function."""

from autograder import checks


def test_check(check, artifacts):
    art = artifacts[check.question]
    checks.question_ran(art)
    checks.CHECKS[check.function](art, **check.params)
