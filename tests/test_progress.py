"""Progress: a tqdm bar over rounds in a terminal, nothing but log lines otherwise."""

import io
import logging

import pytest

from fl_privacy import progress


@pytest.mark.parametrize("terminal", [True, False])
def test_round_progress_counts_rounds_only_in_a_terminal(monkeypatch, terminal):
    stream = io.StringIO()
    monkeypatch.setattr(progress, "in_terminal", lambda: terminal)
    monkeypatch.setattr("sys.stderr", stream)
    with progress.round_progress(3) as bar:
        for server_round in range(4):  # round 0 = after warm-up
            bar.update(server_round, accuracy=0.5 + server_round / 10)
        if terminal:
            assert bar.bar.n == 3 and bar.bar.total == 3
    assert ("FL rounds" in stream.getvalue()) is terminal
    if terminal:
        assert "accuracy=0.8000" in stream.getvalue()
    else:
        assert bar.bar is None and stream.getvalue() == ""


def test_console_log_goes_through_the_bar_in_a_terminal(monkeypatch):
    """While the bar runs, the console handler is swapped for tqdm's, so log lines print above the bar."""
    stream = io.StringIO()
    monkeypatch.setattr(progress, "in_terminal", lambda: True)
    monkeypatch.setattr("sys.stderr", stream)
    root = logging.getLogger()
    handler = logging.StreamHandler(stream)
    root.addHandler(handler)
    try:
        with progress.round_progress(2) as bar:
            assert handler not in root.handlers
            root.warning("round 1 done")
            bar.update(1)
        assert handler in root.handlers
    finally:
        root.removeHandler(handler)
    assert "round 1 done" in stream.getvalue()


def test_progress_over_items_is_plain_without_terminal(monkeypatch):
    monkeypatch.setattr(progress, "in_terminal", lambda: False)
    items = [1, 2, 3]
    assert progress.progress(items, "x", "item") is items
