"""Bounded stream capture: terminal control characters and size limits."""

from autograder.runner.outputs import StreamBuffer, apply_controls


def test_progress_bars_collapse_to_what_a_terminal_shows():
    assert apply_controls("1/3\b\b\b2/3\b\b\b3/3 - loss: 0.1") == "3/3 - loss: 0.1"
    assert apply_controls("10%\r50%\r100%") == "100%"
    buf = StreamBuffer(1000)
    for step in range(1, 470):
        buf.feed("\b" * 20 + f"{step}/469 ━━━━ loss" if step > 1 else f"{step}/469 ━━━━ loss")
    buf.feed("\nPrécision : 0.970\n")
    assert buf.render() == "469/469 ━━━━ loss\nPrécision : 0.970\n"


def test_huge_output_keeps_head_and_tail_within_the_limit():
    buf = StreamBuffer(1000)
    buf.feed("début\n")
    buf.feed("x" * 50_000_000)
    buf.feed("\nfin\n")
    text = buf.render()
    assert len(text) < 1200
    assert text.startswith("début\n") and text.endswith("fin\n") and "sortie tronquée" in text


def test_many_lines_are_bounded_too():
    buf = StreamBuffer(200)
    for i in range(100_000):
        buf.feed(f"ligne {i}\n")
    text = buf.render()
    assert len(text) < 300 and "ligne 0\n" in text and text.endswith("ligne 99999\n")
