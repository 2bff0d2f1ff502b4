"""Brat standoff -> training CSV -> brat keeps every annotation; what IOB2 cannot hold is reported."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Set, Tuple

import pytest

from bert_tf.ner import brat
from bert_tf.ner.data import NerExample, read_conll, read_ner_csv
from bert_tf.ner.sentences import Token
from bert_tf.errors import InputError
from conftest import ROOT

SCRIPT = ROOT / "scripts" / "brat_to_csv.py"


def annotations(folder: Path) -> Dict[str, Set[Tuple[str, int, int, str]]]:
    """(type, start, end, covered text) of every text-bound annotation of every document."""
    out = {}
    for doc in brat.read_folder(str(folder)):
        out[doc.doc_id] = {(e.type, e.start, e.end, doc.text[e.start:e.end]) for e in doc.entities}
    return out


def spans_from_tags(tokens: Sequence[Token], tags: Sequence[str]) -> List[Tuple[str, int, int]]:
    """(type, start, end) of the entities in IOB2 tags (an I- tag after O or another type starts one)."""
    spans: List[Tuple[str, int, int]] = []
    current: Optional[List] = None
    for token, tag in zip(tokens, tags):
        kind, _, entity_type = tag.partition("-")
        if kind == "I" and current is not None and current[0] == entity_type:
            current[2] = token.end
            continue
        if current is not None:
            spans.append(tuple(current))
        current = [entity_type, token.start, token.end] if kind in ("B", "I") else None
    if current is not None:
        spans.append(tuple(current))
    return spans


def align_tokens(text: str, tokens: Sequence[str], start: int = 0) -> List[Token]:
    """Offsets of `tokens` found in order in `text` from `start`, only whitespace between them."""
    out: List[Token] = []
    position = start
    for word in tokens:
        while position < len(text) and text[position].isspace():
            position += 1
        assert text.startswith(word, position), f"token {word!r} not found at offset {position}"
        out.append(Token(word, position, position + len(word)))
        position += len(word)
    return out


def rows_to_spans(text: str, examples: List[NerExample]) -> List[Tuple[str, int, int]]:
    """Entity spans of a document's tagged rows, the tokens found in order in `text`."""
    spans, position = [], 0
    for example in examples:
        aligned = align_tokens(text, example.tokens, position)
        if aligned:
            position = aligned[-1].end
        spans.extend(spans_from_tags(aligned, example.tags or ()))
    return spans


def csv_back_to_brat(csv_path: Path, txt_folder: Path, out_folder: Path) -> None:
    """Write .txt + .ann for every document of the CSV (texts from the original folder)."""
    out_folder.mkdir()
    documents: Dict[str, List[NerExample]] = {}
    for example in read_ner_csv(str(csv_path)):
        documents.setdefault(example.doc_id or "", []).append(example)
    for doc_id, examples in documents.items():
        text = brat.read_text(str(txt_folder / f"{doc_id}.txt"))
        (out_folder / f"{doc_id}.txt").write_bytes(text.encode("utf-8"))
        (out_folder / f"{doc_id}.ann").write_text(brat.format_ann(text, rows_to_spans(text, examples)),
                                                   encoding="utf-8")


def round_trip(folder: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    out_csv = tmp_path / "train.csv"
    done = subprocess.run([sys.executable, str(SCRIPT), str(folder), str(out_csv)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    csv_back_to_brat(out_csv, folder, tmp_path / "back")
    return done


def write_doc(folder: Path, name: str, text: str, ann: str) -> None:
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.txt").write_bytes(text.encode("utf-8"))
    (folder / f"{name}.ann").write_bytes(ann.encode("utf-8"))


def test_generated_sample_round_trips_with_multibyte_tabs_newlines_and_repeated_words(tmp_path: Path) -> None:
    text = ("Äiti asui Helsingissä.\tHelsingissä oli 🍕-ravintola, jonka omisti Ääkkönen Oy.\r\n\n"
            "Helsinki-based Ääkkönen Oy\nmyi 5. toukokuuta Helsingissä.\n")
    def at(word: str, nth: int = 0) -> Tuple[int, int]:
        start = -1
        for _ in range(nth + 1):
            start = text.index(word, start + 1)
        return start, start + len(word)
    spans = [("LOC", *at("Helsingissä")), ("LOC", *at("Helsingissä", 1)), ("PRO", *at("🍕-ravintola")),
             ("ORG", *at("Ääkkönen Oy")), ("LOC", *at("Helsinki")), ("ORG", *at("Ääkkönen Oy\nmyi")), ("DATE", *at("5. toukokuuta")), ("LOC", *at("Helsingissä", 2))]
    ann = "".join(f"T{i}\t{t} {a} {b}\t{' '.join(text[a:b].split())}\n" for i, (t, a, b) in enumerate(spans, 1))
    write_doc(tmp_path / "in", "doc1", text, ann + "#1\tAnnotatorNotes T1\ta note\n")
    write_doc(tmp_path / "in", "doc2", "No entities here.", "")
    done = round_trip(tmp_path / "in", tmp_path)
    assert annotations(tmp_path / "back") == annotations(tmp_path / "in")
    assert len(annotations(tmp_path / "in")["doc1"]) == 8
    assert "1 non-entity lines" in done.stderr and "skipped" not in done.stderr
    with open(tmp_path / "train.csv", encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["doc_id"] for r in rows] == ["doc1"] * 3 + ["doc2"]
    assert eval(rows[2]["tokens"])[:4] == ["Helsinki", "-based", "Ääkkönen", "Oy"]


def test_overlapping_and_discontinuous_annotations_are_reported(tmp_path: Path) -> None:
    text = "New York City and the Bay Area."
    ann = ("T1\tLOC 0 13\tNew York City\nT2\tLOC 0 8\tNew York\nT3\tLOC 22 25;26 30\tBay Area\n"
           "T4\tORG 9 17\tCity and\n")
    write_doc(tmp_path / "in", "d", text, ann)
    done = round_trip(tmp_path / "in", tmp_path)
    assert annotations(tmp_path / "back") == {"d": {("LOC", 0, 13, "New York City")}}
    assert "1 discontinuous annotations skipped; first: " in done.stderr and "d.ann:3: T3" in done.stderr
    assert "2 overlapping annotations skipped (the longest kept); first: " in done.stderr
    assert "d.ann:2: T2" in done.stderr and "d.ann:4: T4" in done.stderr


@pytest.mark.parametrize("ann, problem", [
    ("T1\tLOC 0 99\tx\n", "d.ann:1: offset 99 is past the end of the text"),
    ("T1\tLOC 0 3\tOsl\nT2\tLOC 5 3\tx\n", "d.ann:2: empty or reversed span 5 3"),
    ("T1\tLOC 0 4\tRome\n", "d.ann:1: the annotation's text 'Rome' differs"),
    ("X1\tfoo\n", "d.ann:1: unknown annotation id 'X1'"),
])
def test_bad_annotations_name_file_and_line(tmp_path: Path, ann: str, problem: str) -> None:
    write_doc(tmp_path / "in", "d", "Oslo is cold.", ann)
    with pytest.raises(InputError, match=problem):
        brat.read_folder(str(tmp_path / "in"))
    done = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "in"), str(tmp_path / "o.csv")],
                          capture_output=True, text=True)
    assert done.returncode == 2 and problem in done.stderr and not (tmp_path / "o.csv").exists()


def test_real_corpus_sample_round_trips(shared_data: Path, tmp_path: Path) -> None:
    sentences = read_conll(str(shared_data / "turku_ner" / "dev.tsv"))
    lines = (shared_data / "turku_ner" / "dev.tsv").read_text(encoding="utf-8").splitlines()
    doc_starts = [i + 1 for i, line in enumerate(lines) if line.startswith("-DOCSTART-")][:6]
    folder, expected = tmp_path / "in", 0
    for d in range(5):
        doc = [s for s in sentences if doc_starts[d] < s.line < doc_starts[d + 1]]
        text, spans = "", []
        for sentence in doc:
            offsets = []
            for word in sentence.tokens:
                offsets.append((len(text), len(text) + len(word)))
                text += word + " "
            text = text[:-1] + "\n"
            tokens = [brat.Token(w, a, b) for w, (a, b) in zip(sentence.tokens, offsets)]
            spans += spans_from_tags(tokens, sentence.tags)
        expected += len(spans)
        write_doc(folder, f"turku{d}", text, brat.format_ann(text, spans))
    assert expected > 20
    round_trip(folder, tmp_path)
    assert annotations(tmp_path / "back") == annotations(folder)
    assert sum(len(v) for v in annotations(folder).values()) == expected
