"""The checked-in demo data under data/demo is exactly what scripts/make_demo_data.py generates, and is well formed."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Tuple

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "data" / "demo"
SCRIPT = ROOT / "scripts" / "make_demo_data.py"
NER_SPLITS = ("train", "val", "test")
NER_TYPES = {"PERSON", "GPE", "ORG", "DATE", "EVENT"}
CONSENSUS_SPLITS = ("train", "dev", "test")
LABELS = ["che", "dis", "ggp", "org", "out"]


def relative_files(folder: Path) -> List[str]:
    """Paths of all files under `folder`, relative to it, sorted."""
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file())


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh generation with the default seed in a temporary folder."""
    out = tmp_path_factory.mktemp("demo") / "demo"
    subprocess.run([sys.executable, str(SCRIPT), "--out", str(out)], check=True, cwd=ROOT, capture_output=True)
    return out


def read_ner(split: str) -> List[Tuple[list, list]]:
    """The (tokens, tags) pairs of one checked-in NER split."""
    frame = pd.read_csv(DEMO / "ner" / f"{split}.csv")
    assert list(frame.columns) == ["tokens", "tags"]
    return [(ast.literal_eval(tokens), ast.literal_eval(tags)) for tokens, tags in zip(frame["tokens"], frame["tags"])]


def read_consensus(split: str) -> List[List[str]]:
    """The tab-separated fields of every row of one checked-in consensus split."""
    text = (DEMO / "consensus" / f"{split}.tsv").read_text(encoding="utf-8")
    assert text.endswith("\n") and "\r" not in text
    return [line.split("\t") for line in text[:-1].split("\n")]


def entity_types(tags: List[str]) -> List[str]:
    """The types of the entities started in an IOB2 tag sequence."""
    return [tag[2:] for tag in tags if tag.startswith("B-")]


def test_checked_in_files_are_byte_identical_to_a_fresh_generation(regenerated: Path) -> None:
    assert relative_files(regenerated) == relative_files(DEMO)
    for name in relative_files(DEMO):
        assert (regenerated / name).read_bytes() == (DEMO / name).read_bytes(), name


def test_total_size_is_small() -> None:
    assert sum((DEMO / name).stat().st_size for name in relative_files(DEMO)) < 1_500_000
    assert sum((DEMO / "ner" / f"{split}.csv").stat().st_size for split in NER_SPLITS) < 1_000_000


@pytest.mark.parametrize("split, size", [("train", 600), ("val", 100), ("test", 100)])
def test_ner_split_sizes_and_pandas_layout(split: str, size: int) -> None:
    examples = read_ner(split)
    assert len(examples) == size
    rewritten = pd.DataFrame({"tokens": [t for t, _ in examples], "tags": [g for _, g in examples]}).to_csv(index=False)
    assert rewritten == (DEMO / "ner" / f"{split}.csv").read_text(encoding="utf-8")


@pytest.mark.parametrize("split", NER_SPLITS)
def test_ner_tags_are_valid_iob2(split: str) -> None:
    for tokens, tags in read_ner(split):
        assert tokens and len(tokens) == len(tags)
        assert all(isinstance(token, str) and token and " " not in token for token in tokens)
        previous = "O"
        for tag in tags:
            assert tag == "O" or (tag[:2] in ("B-", "I-") and tag[2:] in NER_TYPES), tag
            if tag.startswith("I-"):
                assert previous != "O" and previous[2:] == tag[2:], (tokens, tags)
            previous = tag


@pytest.mark.parametrize("split", NER_SPLITS)
def test_ner_splits_have_every_type_long_documents_and_entity_free_sentences(split: str) -> None:
    examples = read_ner(split)
    assert {kind for _, tags in examples for kind in entity_types(tags)} == NER_TYPES
    lengths = [len(tokens) for tokens, _ in examples]
    assert any(length > 150 for length in lengths)
    assert min(lengths) >= 4 and max(lengths) <= 300
    assert any(all(tag == "O" for tag in tags) for _, tags in examples)


def test_ner_evaluation_splits_hold_names_unseen_in_train() -> None:
    def names(split: str) -> set:
        found = set()
        for tokens, tags in read_ner(split):
            found.update(token for token, tag in zip(tokens, tags) if tag in ("B-PERSON", "I-PERSON"))
        return found

    assert names("test") - names("train")
    assert names("val") - names("train")


def test_labels_file() -> None:
    assert (DEMO / "consensus" / "labels.txt").read_text(encoding="utf-8") == "\n".join(LABELS) + "\n"


@pytest.mark.parametrize("split, size", [("train", 800), ("dev", 200), ("test", 200)])
def test_consensus_rows_are_well_formed(split: str, size: int) -> None:
    rows = read_consensus(split)
    assert len(rows) == size
    for row in rows:
        assert len(row) == 6, row
        doc_id, annotation_id, label, left, mention, right = row
        assert doc_id.isdigit() and annotation_id and label in LABELS
        assert mention.strip() == mention and mention
        assert len(left.split()) <= 41 and len(right.split()) <= 41
    assert {row[2] for row in rows} == set(LABELS)
    assert any(row[3].startswith("DOCSTART ") for row in rows)
    assert any(row[5].endswith(" DOCEND") for row in rows)
    assert len({(row[0], row[1]) for row in rows}) == size


def test_consensus_contexts_rebuild_one_document_text() -> None:
    by_document: Dict[str, set] = {}
    for row in read_consensus("train"):
        if row[3].startswith("DOCSTART ") and row[5].endswith(" DOCEND"):
            by_document.setdefault(row[0], set()).add(row[3][len("DOCSTART "):] + row[4] + row[5][: -len(" DOCEND")])
    assert by_document
    assert all(len(texts) == 1 for texts in by_document.values())


def test_consensus_label_mix_and_context_dependent_out() -> None:
    rows = [row for split in CONSENSUS_SPLITS for row in read_consensus(split)]
    shares = {label: sum(row[2] == label for row in rows) / len(rows) for label in LABELS}
    assert 0.35 <= shares["out"] <= 0.55 and 0.15 <= shares["che"] <= 0.3
    assert all(0.07 <= shares[label] <= 0.18 for label in ("dis", "ggp", "org"))
    labels_of_lead = {row[2] for row in rows if row[4] == "lead"}
    assert labels_of_lead == {"che", "out"}


def test_consensus_splits_share_no_document() -> None:
    documents = {split: {row[0] for row in read_consensus(split)} for split in CONSENSUS_SPLITS}
    assert not documents["train"] & documents["dev"]
    assert not documents["train"] & documents["test"]
    assert not documents["dev"] & documents["test"]
