"""The progress bar's lines as they appear in a batch job's log file (a stream that is not a terminal)."""

from __future__ import annotations

import io

import pytest

from bert_tf.progress import ProgressBar, plural


@pytest.mark.parametrize("unit, count, expected", [
    ("step", 1, "step"), ("step", 2, "steps"), ("step", 0, "steps"), ("batch", 333, "batches"),
    ("batch", 1, "batch"), ("pass", 2, "passes"), ("example", 5, "examples"),
])
def test_plural(unit, count, expected):
    assert plural(unit, count) == expected


def test_log_file_gets_a_line_per_interval_and_the_last_one_with_figures():
    stream = io.StringIO()
    bar = ProgressBar(333, "predict", unit="batch", stream=stream, log_interval=3600)
    bar.update(1)  # first update: printed (nothing printed before)
    bar.update(2)  # within the interval: not printed
    bar.update(333, {"loss": 0.25})  # the end: always printed
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    assert "1/333 batches" in lines[0] and "ETA" in lines[0]
    assert lines[1].startswith("predict [" + "#" * 30 + "] 333/333 batches")
    assert "total" in lines[1] and "ETA" not in lines[1] and lines[1].endswith("loss 0.2500")


def test_unknown_total_counts_units():
    stream = io.StringIO()
    bar = ProgressBar(None, "read", unit="batch", stream=stream, log_interval=0)
    bar.update(1)
    bar.update(7)
    assert [line.split(" (")[0] for line in stream.getvalue().splitlines()] == ["read 1 batch", "read 7 batches"]


class _Clock:
    """A stand-in for the time module whose time() is set by the test."""

    def __init__(self, now: float):
        self.now = now

    def time(self) -> float:
        return self.now


def test_counts_add_up_and_show_as_rates(monkeypatch):
    from bert_tf import progress

    clock = _Clock(1000.0)
    monkeypatch.setattr(progress, "time", clock)
    stream = io.StringIO()
    bar = ProgressBar(4, "  train", stream=stream, log_interval=0)
    clock.now += 10.0
    bar.update(1, {"loss": 2.0}, {"tokens": 1000})
    bar.update(2, {"loss": 1.5}, {"tokens": 1000})
    first, second = stream.getvalue().splitlines()
    assert first.endswith("loss 2.0000  100 tokens/s") and second.endswith("loss 1.5000  200 tokens/s")
