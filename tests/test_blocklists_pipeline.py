"""The blocklist pipeline against the published generate-blocklists.sh, byte for byte, on random predictions."""

from __future__ import annotations

import os
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np
import pytest

from bert_tf.classifier import blocklists
from bert_tf.classifier.prediction_files import format_published_row, format_row, header_line

REPO_ROOT = Path(__file__).resolve().parents[1]
# Unmodified copies of the published scripts (tests/fixtures/published_blocklists/SOURCE.md says from where).
PUBLISHED = REPO_ROOT / "tests" / "fixtures" / "published_blocklists"
PUBLISHED_FILES = ("generate-blocklists.sh", "make_local_blacklist.py", "global_blacklist_candidates.py",
                   "make_local_bw_lists.py")
LABELS = ("che", "dis", "ggp", "org", "out")
TYPES = ("ggp", "che", "org", "dis")
# Probabilities whose str(float32) exercises sort -n: exponents (1e-05 sorts as 1) and exact ties.
TINY = (1e-05, 3e-08, 2.5e-06, 1e-05)


def probabilities(type_: str, p_type: float, rng: random.Random) -> List[float]:
    """A probability per label: p_type for the type, the rest spread over the other labels."""
    rest = [rng.choice((rng.random(), rng.choice(TINY))) for _ in LABELS]
    scale = (1.0 - p_type) / sum(rest)
    return [p_type if label == type_ else value * scale for label, value in zip(LABELS, rest)]


def name_profiles(type_: str) -> Dict[str, Tuple[float, ...]]:
    """Names and the per-document probabilities of the type they draw from (repeats make ties)."""
    profiles = {
        "alpha": (0.02, 0.1), "Beta": (0.9, 0.95, 0.999), "beta": (0.4, 0.6), "é-ase": (0.3,), "αβ": (0.05, 0.7),
        "two words": (0.5,), "Zeta": (0.999, 0.001), "rare": (0.01,),
        # Almost surely of the type: mean error probabilities like 3e-12, which sort -n reads as 3.
        "sure": (0.99999,), "sure2": (0.9999,),
    }
    if type_ == "ggp":
        profiles.update({"insulin": (0.01,), "INSULIN": (0.02,)})
    return profiles


def documents(type_: str, rng: random.Random, first_doc: int, count: int) -> List[Tuple[str, str, str, List[float]]]:
    """Rows (doc_id, column 3, name, probabilities) of `count` random documents."""
    profiles = name_profiles(type_)
    rows = []
    for doc in range(first_doc, first_doc + count):
        for name in rng.sample(sorted(profiles), rng.randint(2, 6)):
            p_type = rng.choice(profiles[name])
            for _ in range(rng.randint(1, 4)):
                source = type_ if rng.random() < 0.9 else rng.choice(TYPES)
                rows.append((str(doc), source, name, probabilities(type_, p_type, rng)))
        rows += fixed_rows(type_, doc)
    return rows


def fixed_rows(type_: str, doc: int) -> List[Tuple[str, str, str, List[float]]]:
    """Rows of names with fixed probabilities: the allowlist's case and exact ties."""
    certain = [0.999999 if label == type_ else 2.5e-07 for label in LABELS]
    unlikely = [0.02 if label == type_ else 0.97 if label == "out" else 0.0033 for label in LABELS]
    # Globally not of the type (24 documents, mean 14/24 not) but certainly of it in 10 documents.
    rows = [(str(doc), type_, "CAT", certain if doc % 5 < 2 else unlikely)] * 3
    if doc % 2 == 0 or doc % 12 == 5:  # of the type but in two documents: the local blocklist's case
        rows += [(str(doc), type_, "mostly", certain if doc % 2 == 0 else unlikely)] * 3
    if doc % 3 == 0:  # two names with the same lines but the name: ties in every sort
        tie = [0.25 if label == type_ else 0.75 if label == "out" else 1e-05 for label in LABELS]
        rows += [(str(doc), type_, "tie1", tie)] * 2 + [(str(doc), type_, "tie2", tie)] * 2
    return rows


def write_prediction_file(path: Path, rows: Sequence[tuple], published: bool) -> None:
    """Write rows in the published 8-column format or in ours."""
    lines = [] if published else [header_line(LABELS)]
    for number, (doc, source, name, probs) in enumerate(rows):
        fields = [doc, f"T{number}", source, "left context", name, "right context"]
        predicted = LABELS[max(range(len(probs)), key=probs.__getitem__)]
        lines.append(format_published_row(fields, predicted, LABELS, probs) if published
                     else format_row(fields, predicted, probs))
    path.write_text("".join(lines), encoding="utf-8")


def make_run_dir(root: Path, seed: int, published: bool = True) -> Path:
    """A RUN_DIR with TYPE-predictions/output_with_probabilities_* of random predictions."""
    rng = random.Random(seed)
    for type_ in TYPES:
        directory = root / f"{type_}-predictions"
        directory.mkdir(parents=True)
        for shard, name in enumerate(("output_with_probabilities_0.tsv", "output_with_probabilities_1.tsv")):
            rows = documents(type_, rng, 1000 * shard + 1, 12)
            write_prediction_file(directory / name, rows, published)
    return root


def published_dir(tmp_path: Path) -> Path:
    """The published blocklist_generation scripts, copied into tmp_path (skip when a tool they need is missing)."""
    for tool in ("bash", "sort", "awk", "diff"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    target = tmp_path / "published_scripts"
    target.mkdir()
    for name in PUBLISHED_FILES:
        shutil.copy(PUBLISHED / name, target / name)
    return target


def compare(run_dir: Path, scripts: Path) -> subprocess.CompletedProcess:
    """Run scripts/compare_published_blocklists.sh."""
    env = dict(os.environ, PYTHON=sys.executable, LC_ALL="C.UTF-8")
    return subprocess.run(["bash", str(REPO_ROOT / "scripts" / "compare_published_blocklists.sh"), str(run_dir),
                           str(scripts)], capture_output=True, text=True, env=env, timeout=120)


@pytest.mark.parametrize("seed", [1, 2])
def test_pipeline_is_byte_identical_to_the_published_script(tmp_path, seed):
    scripts = published_dir(tmp_path)
    run_dir = make_run_dir(tmp_path / "run", seed)
    result = compare(run_dir, scripts)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "identical: " in result.stdout
    # The comparison is only worth something when every list has lines.
    ours = tmp_path / "ours"
    blocklists.run_pipeline(str(run_dir), str(ours), blocklists.PipelineOptions())
    for name in ("auto_local.tsv", "auto_global.tsv", "local_whitelist_ggp_3col.tsv", "local_blacklist_che_3col.tsv",
                 "dis_global_min_mentions_1_min_docs_2_threshold_0.85.tsv"):
        assert (ours / name).read_text(encoding="utf-8").strip(), name


def test_comparison_script_reports_a_difference(tmp_path):
    scripts = published_dir(tmp_path)
    run_dir = make_run_dir(tmp_path / "run", 3)
    # A published script that writes one digit differently must be caught.
    script = scripts / "global_blacklist_candidates.py"
    script.write_text(script.read_text().replace("avg_prob = sum(probs)/count", "avg_prob = sum(probs)/count*0.999"))
    result = compare(run_dir, scripts)
    assert result.returncode == 1, result.stderr
    differing = set(re.findall(r"^diff -r -x \S+ \S+/published/(\S+) \S+/ours/\S+$", result.stdout, re.M))
    # the changed script's own list, and the lists made from it
    assert "global-non-ggp-probabilities-min-mentions-1-min-docs-2.tsv" in differing, result.stdout[-3000:]
    assert "identical" not in result.stdout


def test_both_formats_give_the_same_lists(tmp_path):
    published = make_run_dir(tmp_path / "published", 4, published=True)
    ours = make_run_dir(tmp_path / "ours", 4, published=False)
    # Same random draws, both written as str(float32): every list is the same, byte for byte.
    out_a, out_b = tmp_path / "a", tmp_path / "b"
    blocklists.run_pipeline(str(published), str(out_a), blocklists.PipelineOptions())
    blocklists.run_pipeline(str(ours), str(out_b), blocklists.PipelineOptions())
    names = sorted(str(p.relative_to(out_a)) for p in out_a.rglob("*.tsv"))
    assert "auto_local.tsv" in names and names == sorted(str(p.relative_to(out_b)) for p in out_b.rglob("*.tsv"))
    for name in names:
        assert (out_a / name).read_bytes() == (out_b / name).read_bytes(), name


def test_our_prediction_file_carries_the_published_probability_text():
    """Full float32 precision, as the published dict file: 0.49999997 (the float32 below 0.5) stays below a
    threshold of 0.5, where six significant digits wrote 0.5."""
    probabilities = np.array([0.49999997, 0.123456789, 1e-8, 0.37654206], dtype=np.float32)
    fields = ["7", "T1", "ggp", "left", "ACE", "right"]
    row = format_row(fields, "ggp", probabilities).rstrip("\n").split("\t")
    assert row[7:] == ["0.49999997", "0.12345679", "1e-08", "0.37654206"]
    published = format_published_row(fields, "ggp", ["che", "dis", "ggp", "org"], probabilities)
    assert published.rstrip("\n").split("\t")[7] == ("{'che': 0.49999997, 'dis': 0.12345679, 'ggp': 1e-08, "
                                                       "'org': 0.37654206}")
