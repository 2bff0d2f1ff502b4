"""Raw text in, character offsets out: documents from a .txt file (one a line) or a folder, entities whose
`start`/`end` index the original text exactly, brat .ann beside each .txt; end to end through run_ner.py
with a quiet start."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bert_tf import checkpoints

from bert_tf.ner import brat

from bert_tf.ner import raw_text
from bert_tf.errors import InputError
from bert_tf.tokenization import WordPieceTokenizer
from conftest import NER_QUICK, run_script

DOCS = {
    "a": "Äiti asui Helsingissä.\tHelsingissä oli 🍕-ravintola (Ääkkönen Oy).\r\n\nDr. Smith kävi 5. toukokuuta.",
    "b": "  Helsinki Helsinki\n\nHelsinki. ",
    "c": "",
}
NOISE = ("cuda", "cuinit", "onednn", "absl::initializelog", "cpu_feature_guard")


def rule_tags(doc: raw_text.RawDocument):
    """LOC for words starting with 'Helsin', ORG for 'Ääkkönen Oy' (B, I)."""
    words = [t.text for t in doc.tokens]
    tags = ["B-LOC" if w.startswith("Helsin") else "O" for w in words]
    for i, w in enumerate(words[:-1]):
        if w == "Ääkkönen" and words[i + 1] == "Oy":
            tags[i:i + 2] = ["B-ORG", "I-ORG"]
    return tags


def test_folder_documents_and_offsets_round_trip(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for name, text in DOCS.items():
        (folder / f"{name}.txt").write_bytes(text.encode("utf-8"))
    docs = raw_text.read_documents(str(folder))
    assert [d.doc_id for d in docs] == ["a", "b", "c"] and [d.text for d in docs] == list(DOCS.values())
    tags = [rule_tags(d) for d in docs]
    out = tmp_path / "out"
    raw_text.write_predictions(docs, tags, [np.full(len(t), 0.9) for t in tags], str(out / "p.jsonl"),
                               str(out / "brat"))
    records = [json.loads(line) for line in (out / "p.jsonl").read_text(encoding="utf-8").splitlines()]
    for doc, record in zip(docs, records):
        for entity in record["entities"]:
            assert doc.text[entity["start"]:entity["end"]] == entity["text"]
    texts = [[(e["type"], e["text"]) for e in r["entities"]] for r in records]
    assert texts[0] == [("LOC", "Helsingissä"), ("LOC", "Helsingissä"), ("ORG", "Ääkkönen Oy")]
    assert [e["start"] for e in records[1]["entities"]] == [2, 11, 21]  # repeated words: each its own place
    assert records[2]["entities"] == []
    back = brat.read_folder(str(out / "brat"))  # .ann offsets and texts are checked against the .txt
    assert [d.text for d in back] == list(DOCS.values())
    assert [[(e.type, e.start, e.end) for e in d.entities] for d in back] == [
        [(e["type"], e["start"], e["end"]) for e in r["entities"]] for r in records]


def test_one_document_a_line(tmp_path: Path) -> None:
    path = tmp_path / "news.txt"
    path.write_bytes("Ensimmäinen rivi.\r\n\n  \nToinen\trivi: Helsinki.\n".encode("utf-8"))
    docs = raw_text.read_documents(str(path))
    assert [(d.doc_id, d.line, d.text) for d in docs] == [("news-line1", 1, "Ensimmäinen rivi."),
                                                         ("news-line4", 4, "Toinen\trivi: Helsinki.")]
    assert [t.text for t in docs[1].tokens] == ["Toinen", "rivi", ":", "Helsinki", "."]
    assert raw_text.as_examples(docs)[1].tokens == ("Toinen", "rivi", ":", "Helsinki", ".")
    (tmp_path / "blank.txt").write_text("\n \n")
    with pytest.raises(InputError, match="blank.txt: no text found"):
        raw_text.read_documents(str(tmp_path / "blank.txt"))
    assert raw_text.is_raw_text(str(path)) and raw_text.is_raw_text(str(tmp_path))
    assert not raw_text.is_raw_text("x.csv") and not raw_text.is_raw_text("x.conll")


def test_run_ner_predicts_raw_text_with_offsets_and_a_quiet_start(tmp_path: Path, tiny_checkpoint: str) -> None:
    checkpoint = checkpoints.find_checkpoint(tiny_checkpoint)
    task = checkpoints.build_task_model(checkpoint, WordPieceTokenizer.from_model_dir(tiny_checkpoint),
                                   ["O", "B-LOC", "I-LOC"], "token", 0.0)
    bias = [v for v in task.model.weights if "classifier" in v.path and v.path.endswith("bias")][0]
    bias.assign([0.0, 20.0, 0.0])  # every word a one-word LOC entity, whatever the random encoder says
    checkpoints.save_model(task, str(tmp_path / "model"), {"max_len": 16})
    (tmp_path / "docs").mkdir()
    text = "Rome and\tRome, 5. toukokuuta — x-y.\n\nÄiti 🍕 Oslo.\r\nLima"
    (tmp_path / "docs" / "d1.txt").write_bytes(text.encode("utf-8"))
    done = run_script(["run_ner.py", NER_QUICK, "--do_predict", f"--save_model_path={tmp_path / 'model'}",
                       f"--predict_file={tmp_path / 'docs'}", f"--predict_output={tmp_path / 'out' / 'p.csv'}"])
    assert done.returncode == 0, done.stderr
    assert not [line for line in done.stderr.splitlines() if any(w in line.lower() for w in NOISE)], done.stderr
    record = json.loads((tmp_path / "out" / "p.jsonl").read_text(encoding="utf-8"))
    words = [t for s in raw_text.read_documents(str(tmp_path / "docs"))[0].sentences for t in s.tokens]
    assert [(e["start"], e["end"], e["text"]) for e in record["entities"]] == [(t.start, t.end, t.text) for t in words]
    assert all(text[e["start"]:e["end"]] == e["text"] for e in record["entities"])
    back = brat.read_folder(str(tmp_path / "out" / "p_brat"))[0]
    assert back.text == text and len(back.entities) == len(words)
    assert (tmp_path / "out" / "p.csv").is_file() and (tmp_path / "out" / "p.conll").is_file()
