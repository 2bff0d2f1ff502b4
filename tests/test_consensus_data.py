"""Tests for bert_tf.classifier.data: the streamed consensus TSV reader and writer."""

from __future__ import annotations

import inspect
import os
import threading
import tracemalloc
from collections import Counter
from pathlib import Path

import pytest

from bert_tf.classifier import data as consensus
from bert_tf.classifier.data import (
    ConsensusExample,
    collect_labels,
    iter_consensus_tsv,
    read_labels_file,
    write_consensus_tsv,
)
from conftest import SHARED_DATA, expect_error, write

EXAMPLES_TSV = SHARED_DATA / "consensus_example" / "examples.tsv"
LABELS_TXT = SHARED_DATA / "consensus_example" / "labels.txt"
needs_consensus = pytest.mark.skipif(not EXAMPLES_TSV.is_file(), reason=f"shared data set not found: {EXAMPLES_TSV}")

LABELS = ["che", "dis", "ggp", "org", "out"]
LINE_1 = "101\tT1\tche\tDOCSTART Aspirin and \taspirin\t reduced pain. DOCEND\n"
LINE_2 = "102\tT7\tdis\tThe  patient had \tfever\t, then  \n"


def read_all(path: str, **options: object) -> list:
    """Every example of `path`."""
    return list(iter_consensus_tsv(path, **options))


# ----------------------------------------------------------------------------- real data


@needs_consensus
def test_real_examples_and_label_counts() -> None:
    labels = read_labels_file(str(LABELS_TXT))
    assert labels == LABELS
    examples = read_all(str(EXAMPLES_TSV), labels=labels, labels_source="labels.txt")
    assert len(examples) == 1000
    assert Counter(e.label for e in examples) == {"che": 195, "dis": 116, "ggp": 110, "org": 102, "out": 477}
    assert collect_labels(str(EXAMPLES_TSV)) == LABELS
    assert [e.line for e in examples] == list(range(1, 1001))
    assert all(e.mention.strip() for e in examples)
    assert any(e.left.endswith(" ") for e in examples) and any(e.right.startswith(" ") for e in examples)


@needs_consensus
def test_real_examples_round_trip(tmp_path: Path) -> None:
    copy = str(tmp_path / "copy.tsv")
    write_consensus_tsv(copy, iter_consensus_tsv(str(EXAMPLES_TSV)))
    assert Path(copy).read_bytes() == EXAMPLES_TSV.read_bytes().replace(b"\r\n", b"\n")


# ----------------------------------------------------------------------------- valid input


def test_fields_whitespace_and_line_numbers(tmp_path: Path) -> None:
    path = write(tmp_path, "\n" + LINE_1 + "\n\r\n" + LINE_2)
    first, second = read_all(path, labels=LABELS)
    assert first == ConsensusExample("101", "T1", "che", "DOCSTART Aspirin and ", "aspirin", " reduced pain. DOCEND", 2)
    assert (second.left, second.mention, second.right, second.line) == ("The  patient had ", "fever", ", then  ", 5)


def test_crlf_equals_lf_and_a_bare_cr_ends_a_line(tmp_path: Path) -> None:
    lf = read_all(write(tmp_path, LINE_1 + LINE_2, "lf.tsv"))
    crlf = read_all(write(tmp_path, (LINE_1 + LINE_2).replace("\n", "\r\n"), "crlf.tsv"))
    assert [e.right for e in crlf] == [e.right for e in lf] == [" reduced pain. DOCEND", ", then  "]
    [before_blank] = read_all(write(tmp_path, "1\tT\tout\ta\tm\tright\r\r\n", "cr.tsv"))
    assert before_blank.right == "right"
    inner_cr = write(tmp_path, LINE_1 + "1\tT\tout\ta\rb\tm\tright\n", "inner.tsv")  # lines 2 (4 fields), 3 (3)
    expect_error(lambda: read_all(inner_cr), inner_cr, 3, "found 3")


def test_last_line_without_newline_bom_and_empty_contexts(tmp_path: Path) -> None:
    path = write(tmp_path, "\ufeff1\tT1\tche\t\tx\t")
    [example] = read_all(path)
    assert (example.doc_id, example.left, example.mention, example.right) == ("1", "", "x", "")


def test_empty_file_yields_nothing(tmp_path: Path) -> None:
    assert read_all(write(tmp_path, "")) == []
    assert read_all(write(tmp_path, "\n\r\n\n", "blank.tsv")) == []


def test_is_lazy_generator_but_checks_the_path_at_once(tmp_path: Path) -> None:
    examples = iter_consensus_tsv(write(tmp_path, LINE_1 + "broken\n"))
    assert inspect.isgenerator(examples)
    assert next(examples).mention == "aspirin"
    missing = str(tmp_path / "missing.tsv")
    expect_error(lambda: iter_consensus_tsv(missing), missing, None, "file not found")


# ----------------------------------------------------------------------------- errors


def test_missing_file_and_directory(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.tsv")
    for call in (read_all, collect_labels, read_labels_file):
        expect_error(lambda: call(missing), missing, None, "file not found")
    expect_error(lambda: read_all(str(tmp_path)), str(tmp_path), None, "directory")


@pytest.mark.parametrize("columns", [1, 2, 3])
def test_fewer_than_four_columns(tmp_path: Path, columns: int) -> None:
    line = "\t".join(["x"] * columns) + "\n"
    path = write(tmp_path, LINE_1 + LINE_2 + line)
    expect_error(lambda: read_all(path), path, 3, "expected at least 4 tab-separated columns", f"found {columns}")


def test_rows_of_four_or_more_fields_are_read_by_negative_index_as_published(tmp_path: Path) -> None:
    """run_ner_consensus.py took label, left, mention, right as line[-4:]; the fields before them are the ids."""
    rows = ["che\tL4\tm4\tR4", "T5\tche\tL5\tm5\tR5", "d7\tT7\tx\tche\tL7\tm7\tR7", "d6\tT6\tche\tL6\t\tR6"]
    path = write(tmp_path, "\n".join(rows) + "\n")
    examples = read_all(path, labels=LABELS)
    assert [(e.doc_id, e.annotation_id, e.label, e.left, e.mention, e.right) for e in examples] == [
        ("", "", "che", "L4", "m4", "R4"), ("T5", "", "che", "L5", "m5", "R5"), ("d7", "T7", "che", "L7", "m7", "R7"),
        ("d6", "T6", "che", "L6", "", "R6")]
    chunks = consensus.TsvLineChunks(path, LABELS)
    [chunk] = list(chunks.chunks(10))
    columns, counts = chunks.parse(chunk)
    assert columns == (("che",) * 4, ("L4", "L5", "L7", "L6"), ("m4", "m5", "m7", ""), ("R4", "R5", "R7", "R6"))
    assert counts == {"rows_extra_columns": 1, "rows_without_ids": 2, "empty_mentions": 1}
    assert consensus.describe_tolerated(counts) == ("rows with more than 6 columns (the last 4 read): 1, rows of 4 "
                                                    "or 5 columns (no doc_id or annotation_id): 2, empty mentions: 1")


def test_whitespace_only_line_is_blank(tmp_path: Path) -> None:
    path = write(tmp_path, LINE_1 + "  \n\t\n" + LINE_2)
    assert [example.line for example in read_all(path)] == [1, 4]


@pytest.mark.parametrize("mention", ["", " ", "\u00a0 "])
def test_empty_mention_is_read_and_counted(tmp_path: Path, mention: str) -> None:
    path = write(tmp_path, LINE_1 + f"1\tT2\tout\tleft\t{mention}\tright\n")
    assert read_all(path)[1].mention == mention
    chunks = consensus.TsvLineChunks(path)
    assert chunks.parse(next(chunks.chunks(10)))[1]["empty_mentions"] == 1


def test_unknown_label_names_label_and_source(tmp_path: Path) -> None:
    path = write(tmp_path, LINE_1 + "1\tT2\txyz\tl\tm\tr\n")
    message = expect_error(lambda: read_all(path, labels=LABELS, labels_source="labels.txt"), path, 2)
    assert message.endswith("label 'xyz' is not in labels.txt (che, dis, ggp, org, out)")
    expect_error(lambda: read_all(path, labels=LABELS), path, 2, "'xyz' is not in the label set (che, dis")
    assert len(read_all(path, labels=LABELS, check_labels=False)) == 2
    assert len(read_all(path)) == 2


@pytest.mark.parametrize("label", ["", " che", "che "])
def test_empty_or_padded_label(tmp_path: Path, label: str) -> None:
    path = write(tmp_path, f"1\tT2\t{label}\tl\tm\tr\n")
    expect_error(lambda: read_all(path), path, 1, "invalid label")


def test_not_utf8_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, LINE_1.encode() + b"\n" + b"1\tT2\tche\tcaf\xe9\tm\tr\r\n")
    expect_error(lambda: read_all(path), path, 3, "not valid UTF-8", "0xe9")


# ----------------------------------------------------------------------------- labels file


def test_read_labels_file(tmp_path: Path) -> None:
    assert read_labels_file(write(tmp_path, "out\n\n che \r\ndis", "labels.txt")) == ["out", "che", "dis"]


def test_labels_file_errors(tmp_path: Path) -> None:
    path = write(tmp_path, "che\ndis\n\nche\n", "dup.txt")
    expect_error(lambda: read_labels_file(path), path, 4, "duplicate label 'che' (first on line 1)")
    path = write(tmp_path, "\n  \r\n", "empty.txt")
    expect_error(lambda: read_labels_file(path), path, None, "no labels")
    path = write(tmp_path, "che\ngene product\n", "space.txt")
    expect_error(lambda: read_labels_file(path), path, 2, "contains whitespace")
    path = write(tmp_path, b"che\n\xff\n", "bytes.txt")
    expect_error(lambda: read_labels_file(path), path, 2, "UTF-8")


# ----------------------------------------------------------------------------- collect and count


def test_collect_labels_sorted_unique(tmp_path: Path) -> None:
    content = "".join(f"{i}\tT\t{label}\tl\tm\tr\n" for i, label in enumerate(["out", "che", "out", "zz", "che"]))
    assert collect_labels(write(tmp_path, content)) == ["che", "out", "zz"]


# ----------------------------------------------------------------------------- writing


def test_write_round_trip_and_refuses_layout_breaking_fields(tmp_path: Path) -> None:
    examples = read_all(write(tmp_path, LINE_1 + LINE_2, "in.tsv"))
    out = str(tmp_path / "sub" / "out.tsv")
    write_consensus_tsv(out, examples)
    assert Path(out).read_text(encoding="utf-8") == LINE_1 + LINE_2
    assert read_all(out) == examples
    bad = ConsensusExample("1", "T", "che", "a\tb", "m", "r", 1)
    with pytest.raises(ValueError):
        write_consensus_tsv(str(tmp_path / "bad.tsv"), [bad])
    assert not (tmp_path / "bad.tsv").exists()


# ----------------------------------------------------------------------------- streaming


def test_memory_stays_small_while_iterating_a_large_file(tmp_path: Path) -> None:
    rows = 200_000
    line = "12345\tT1\tche\tsome left context words \tmention\t right context words here.\n"
    path = tmp_path / "big.tsv"
    with open(path, "w", encoding="utf-8") as f:
        for _ in range(rows // 1000):
            f.write(line * 1000)
    assert path.stat().st_size > 10_000_000
    tracemalloc.start()
    try:
        count = sum(1 for _ in iter_consensus_tsv(str(path), labels=LABELS))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert count == rows
    assert peak < 4_000_000, f"peak traced memory {peak} bytes"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes (os.mkfifo)")
def test_first_example_arrives_before_the_file_is_complete(tmp_path: Path) -> None:
    fifo = str(tmp_path / "pipe.tsv")
    os.mkfifo(fifo)
    first_received = threading.Event()
    writer_finished = threading.Event()

    def write_slowly() -> None:
        with open(fifo, "w", encoding="utf-8") as pipe:
            pipe.write(LINE_1)
            pipe.flush()
            first_received.wait(timeout=10)
            pipe.write(LINE_2)
        writer_finished.set()

    writer = threading.Thread(target=write_slowly, daemon=True)
    writer.start()
    try:
        examples = iter_consensus_tsv(fifo)
        first = next(examples)
        assert not writer_finished.is_set()
        first_received.set()
        assert first.mention == "aspirin"
        assert [e.mention for e in examples] == ["fever"]
    finally:
        first_received.set()
        if writer.is_alive() and not writer_finished.is_set():
            os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))  # unblock a writer still waiting to open
        writer.join(timeout=10)
    assert writer_finished.is_set()
