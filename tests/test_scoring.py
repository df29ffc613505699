"""The scoring process: the warm one gives the outcomes of a fresh one, and is replaced when it dies."""

from autograder.core.config import load_config
from autograder.runner import scoring
from autograder.runner.scoring import score


def test_warm_scoring_gives_the_cold_outcomes_and_is_replaced_when_it_dies(tmp_path):
    config = load_config()
    capture = tmp_path / "capture"        # nothing captured: every check fails, each with its reason
    capture.mkdir()
    failed = {"q2": "la question q2 n'a pas été complétée"}
    cold = score(config, capture, failed, tmp_path / "cold")
    warm = score(config, capture, failed, tmp_path / "warm", warm=True)
    server = scoring._server()
    first = server.proc.pid
    server.proc.kill()
    server.proc.wait()
    again = score(config, capture, failed, tmp_path / "again", warm=True)
    assert server.proc.pid != first
    assert cold.outcomes == warm.outcomes == again.outcomes
    assert set(cold.outcomes) == {c.number for c in config.checks}
    assert not any(o.passed for o in cold.outcomes.values())
    assert {o.message for n, o in cold.outcomes.items() if n.startswith("q2.")} != {""}
    assert "failed" in (tmp_path / "warm" / "scoring.log").read_text()     # pytest's report, in the submission's log
