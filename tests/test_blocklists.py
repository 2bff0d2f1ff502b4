"""Tests of bert_tf.blocklists on small hand-made prediction files; answers worked out by hand."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path
from typing import List, Sequence

import pytest

from bert_tf import blocklists
from bert_tf.blocklists import GlobalEntry, LocalOptions, global_entries, local_entries
from bert_tf.errors import InputError

REPO_ROOT = Path(__file__).resolve().parents[1]
LABELS = ("che", "dis", "ggp", "org", "out")
HEADER = "doc_id\tannotation_id\tlabel\tleft_context\tmention\tright_context\tpredicted_label\t"


def write_predictions(path: Path, rows: Sequence[tuple], labels: Sequence[str] = LABELS, prefix: str = "") -> str:
    """Write a predictions file; each row is (doc_id, mention, probabilities in label order)."""
    lines = [HEADER + "\t".join(prefix + label for label in labels)]
    for number, (doc, mention, probs) in enumerate(rows):
        predicted = labels[max(range(len(probs)), key=lambda i: probs[i])]
        cells = [doc, f"T{number}", "ggp", "left ctx", mention, "right ctx", predicted]
        lines.append("\t".join(cells + [repr(p) for p in probs]))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def write_lines(path: Path, lines: List[str]) -> str:
    """Write lines of text to path and return it as a string."""
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


#                  che  dis  ggp  org  out
ACE_ROWS = [
    ("100", "ACE", (0.1, 0.1, 0.4, 0.1, 0.3)),
    ("100", "ACE", (0.1, 0.1, 0.2, 0.1, 0.5)),
    ("100", "ACE", (0.1, 0.1, 0.3, 0.1, 0.4)),
]
# Products over the three occurrences: che = dis = org = 0.1**3 = 0.001,
# ggp = 0.4*0.2*0.3 = 0.024, out = 0.3*0.5*0.4 = 0.06; total = 0.087.
# Combined p(ggp) = 0.024 / 0.087 = 0.27586..., so log10 = log10(0.024 / 0.087) = -0.55930...
ACE_LOG10 = math.log10(0.024 / 0.087)


def ggp_options(**kwargs) -> LocalOptions:
    """Local options for ggp names tested as ggp, with the defaults of the command line."""
    return LocalOptions(source_type="ggp", target_type=kwargs.pop("target_type", "ggp"), **kwargs)


# ----------------------------------------------------------------------------- arithmetic


def test_log10_sum_is_stable_for_very_small_values():
    # log10(10**-400 + 10**-400) = -400 + log10(2), although 10**-400 underflows to 0.
    assert blocklists.log10_sum([-400.0, -400.0]) == pytest.approx(-400 + math.log10(2))


def test_clamped_log10_of_zero_is_finite():
    assert blocklists.clamped_log10(0.0) == -300.0


# ----------------------------------------------------------------------------- local


def test_three_occurrences_in_one_document_are_combined(tmp_path):
    path = write_predictions(tmp_path / "p.tsv", ACE_ROWS)
    [entry] = local_entries(path, ggp_options(threshold=0.5, min_count=2))
    assert (entry.doc_id, entry.name, entry.type, entry.count) == ("100", "ACE", "ggp", 3)
    assert entry.log10_probability == pytest.approx(ACE_LOG10)
    assert entry.log10_probability == pytest.approx(-0.559308, abs=1e-6)


def test_combined_probability_above_threshold_is_not_listed(tmp_path):
    path = write_predictions(tmp_path / "p.tsv", ACE_ROWS)
    # 0.27586 < 0.25 is false, so nothing is listed at threshold 0.25.
    assert local_entries(path, ggp_options(threshold=0.25)) == []


def test_p_prefix_on_label_columns_is_accepted(tmp_path):
    path = write_predictions(tmp_path / "p.tsv", ACE_ROWS, prefix="p_")
    [entry] = local_entries(path, ggp_options())
    assert entry.log10_probability == pytest.approx(ACE_LOG10)


def test_probability_zero_for_the_target_gives_a_finite_result(tmp_path):
    rows = [
        ("7", "p53", (0.0, 0.0, 0.0, 0.0, 1.0)),  # ggp underflowed to exactly 0
        ("7", "p53", (0.0, 0.0, 0.9, 0.0, 0.1)),
    ]
    path = write_predictions(tmp_path / "p.tsv", rows)
    [entry] = local_entries(path, ggp_options())
    # Clamped logs summed: ggp = -300 + log10(0.9), out = 0 + log10(0.1) = -1,
    # che = dis = org = -600. The normaliser is -1 (the rest is below 1e-298 of it), so
    # log10 p(ggp) = -300 + log10(0.9) + 1 = -299.045757...
    assert math.isfinite(entry.log10_probability)
    assert entry.log10_probability == pytest.approx(-299 + math.log10(0.9))
    assert entry.count == 2


def test_min_count(tmp_path):
    rows = [("5", "once", (0.0, 0.0, 0.1, 0.0, 0.9))]  # p(ggp) = 0.1 alone, one occurrence
    path = write_predictions(tmp_path / "p.tsv", rows)
    assert local_entries(path, ggp_options(min_count=2)) == []
    [entry] = local_entries(path, ggp_options(min_count=1))
    assert entry.count == 1
    assert entry.log10_probability == pytest.approx(-1.0)


def test_threshold_boundary_is_not_below(tmp_path):
    half = (0.0, 0.0, 0.5, 0.0, 0.5)
    path = write_predictions(tmp_path / "p.tsv", [("1", "X", half), ("1", "X", half)])
    # ggp = out = 0.25 after two occurrences, the rest ~1e-600: combined p(ggp) = 0.5 exactly,
    # which is not below a threshold of 0.5 but is below 0.5001.
    assert local_entries(path, ggp_options(threshold=0.5)) == []
    [entry] = local_entries(path, ggp_options(threshold=0.5001))
    assert 10**entry.log10_probability == pytest.approx(0.5)


def test_target_type_differs_from_source_type(tmp_path):
    path = write_predictions(tmp_path / "p.tsv", ACE_ROWS)
    [entry] = local_entries(path, ggp_options(target_type="out", threshold=0.9))
    # p(out) = 0.06 / 0.087 = 0.68966 < 0.9; the type column is the target type.
    assert entry.log10_probability == pytest.approx(math.log10(0.06 / 0.087))
    assert entry.type == "out"


def test_lowercase_names_groups_case_insensitively(tmp_path):
    rows = [("1", "Ace", ACE_ROWS[0][2]), ("1", "ACE", ACE_ROWS[1][2]), ("1", "ace", ACE_ROWS[2][2])]
    path = write_predictions(tmp_path / "p.tsv", rows)
    assert local_entries(path, ggp_options()) == []  # three names seen once each
    [entry] = local_entries(path, ggp_options(lowercase_names=True))
    assert (entry.name, entry.count) == ("ace", 3)
    assert entry.log10_probability == pytest.approx(ACE_LOG10)


def test_source_types_file_selects_rows(tmp_path):
    rows = ACE_ROWS + [("100", "aspirin", (0.1, 0.1, 0.1, 0.1, 0.6))] * 2
    path = write_predictions(tmp_path / "p.tsv", rows)
    # Without the file both names count as ggp: aspirin p(ggp) = 0.01/(0.01*4+0.36) = 0.025.
    names = [e.name for e in local_entries(path, ggp_options())]
    assert names == ["aspirin", "ACE"]  # sorted by log probability: log10(0.025) < log10(0.276)
    types = blocklists.read_source_types(write_lines(tmp_path / "types.tsv", ["ACE\tggp", "aspirin\tche"]), False)
    assert [e.name for e in local_entries(path, ggp_options(source_types=types))] == ["ACE"]


def test_documents_sorted_numerically_then_by_probability(tmp_path):
    low = (0.0, 0.0, 0.01, 0.0, 0.99)
    mid = (0.0, 0.0, 0.1, 0.0, 0.9)
    rows = [("10", "b", mid), ("10", "b", mid), ("10", "a", low), ("10", "a", low),
            ("9", "c", mid), ("9", "c", mid)]
    path = write_predictions(tmp_path / "p.tsv", rows)
    text = blocklists.format_local(local_entries(path, ggp_options()))
    # Two occurrences: 0.1**2 / (0.1**2 + 0.9**2) = 0.01/0.82; 0.01**2 / (0.01**2 + 0.99**2) = 1e-4/0.9802.
    lines = text.splitlines()
    assert lines[0] == "log10_probability\tcount\tdoc_id\tname\ttype"
    assert [line.split("\t")[2:] for line in lines[1:]] == [
        ["9", "c", "ggp"], ["10", "a", "ggp"], ["10", "b", "ggp"]]
    assert float(lines[1].split("\t")[0]) == pytest.approx(math.log10(0.01 / 0.82))
    assert float(lines[2].split("\t")[0]) == pytest.approx(math.log10(1e-4 / 0.9802))


@pytest.mark.parametrize(
    "bad_row, problem",
    [
        ("1\tT9\tggp\tl\tACE\tr\tggp\t0.1\t0.1\t0.4\t0.1", "expected 12 tab-separated columns, found 11"),
        ("1\tT9\tggp\tl\tACE\tr\tggp\t0.1\t0.1\tx\t0.1\t0.3", "probability of 'ggp' is not a number"),
        ("1\tT9\tggp\tl\tACE\tr\tggp\t0.1\t0.1\t1.5\t0.1\t0.3", "probability of 'ggp' is not in [0, 1]"),
        ("1\tT9\tggp\tl\tACE\tr\tggp\t0.1\t0.1\tnan\t0.1\t0.3", "probability of 'ggp' is not in [0, 1]"),
    ],
)
def test_malformed_rows_name_file_and_line(tmp_path, bad_row, problem):
    path = write_predictions(tmp_path / "p.tsv", ACE_ROWS[:1])
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(bad_row + "\n")
    with pytest.raises(InputError) as info:
        local_entries(path, ggp_options())
    assert str(info.value).startswith(f"{path}:3: {problem}")


def test_unknown_target_label_and_bad_header(tmp_path):
    path = write_predictions(tmp_path / "p.tsv", ACE_ROWS)
    with pytest.raises(InputError, match=r"p\.tsv:1: target type 'gene'"):
        local_entries(path, ggp_options(target_type="gene"))
    bad = write_lines(tmp_path / "bad.tsv", ["doc\tmention\tggp"])
    with pytest.raises(InputError, match=r"bad\.tsv:1: header must be"):
        local_entries(bad, ggp_options())


def test_documents_must_be_grouped(tmp_path):
    p = (0.0, 0.0, 0.1, 0.0, 0.9)
    path = write_predictions(tmp_path / "p.tsv", [("1", "a", p), ("2", "a", p), ("1", "a", p)])
    with pytest.raises(InputError, match=r"p\.tsv:4: rows of document '1' are not together"):
        local_entries(path, ggp_options())


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="nope.tsv: no such file"):
        local_entries(str(tmp_path / "nope.tsv"), ggp_options())


# ----------------------------------------------------------------------------- global

LOCAL_HEADER = "log10_probability\tcount\tdoc_id\tname\ttype"


def write_local_lists(tmp_path: Path) -> List[str]:
    """Two local lists; error probabilities 1 - 10**log10p noted per line."""
    first = write_lines(tmp_path / "local1.tsv", [
        LOCAL_HEADER,
        "-2\t3\t1\tACE\tggp",   # 0.99
        "-1\t2\t1\tBRCA\tggp",  # 0.9
        "-1\t2\t1\tSOLO\tggp",  # 0.9, the only document of SOLO
        "-2\t2\t2\tBRCA\tggp",  # 0.99
        "-0.30102999566398120\t2\t2\tACE\tggp",  # 0.5
        "-1\t2\t2\tACE\tche",   # 0.9, (ACE, che) is a different entry from (ACE, ggp)
    ])
    second = write_lines(tmp_path / "local2.tsv", ["-1\t4\t3\tBRCA\tggp"])  # 0.9, no header
    return [first, second]


def test_global_averages_error_probabilities(tmp_path):
    entries = global_entries(write_local_lists(tmp_path), threshold=0.5, min_docs=2)
    # BRCA: 3 documents, (0.9 + 0.99 + 0.9) / 3 = 0.93, expected 2.79.
    # ACE ggp: 2 documents, (0.99 + 0.5) / 2 = 0.745, expected 1.49. SOLO and ACE che: one document.
    assert [(e.name, e.type, e.documents) for e in entries] == [("BRCA", "ggp", 3), ("ACE", "ggp", 2)]
    assert entries[0].mean_error_probability == pytest.approx(0.93)
    assert entries[0].expected_errors == pytest.approx(2.79)
    assert entries[1].mean_error_probability == pytest.approx(0.745)
    assert entries[1].expected_errors == pytest.approx(1.49)


def test_single_document_names_kept_with_min_docs_one(tmp_path):
    entries = global_entries(write_local_lists(tmp_path), threshold=0.5, min_docs=1)
    # Expected errors: BRCA 2.79, ACE ggp 1.49, then ACE che 0.9 and SOLO 0.9 tied, ordered by name.
    assert [(e.name, e.type) for e in entries] == [("BRCA", "ggp"), ("ACE", "ggp"), ("ACE", "che"), ("SOLO", "ggp")]


def test_global_threshold_boundary(tmp_path):
    paths = write_local_lists(tmp_path)
    assert [e.name for e in global_entries(paths, threshold=0.745)] == ["BRCA", "ACE"]  # 0.745 >= 0.745
    assert [e.name for e in global_entries(paths, threshold=0.7451)] == ["BRCA"]
    assert [e.name for e in global_entries(paths, threshold=0.93)] == ["BRCA"]
    assert global_entries(paths, threshold=0.9301) == []


def test_allowlist(tmp_path):
    allow = blocklists.read_allowlist(write_lines(tmp_path / "allow.txt", ["# keep these", "", "BRCA"]))
    assert allow == {"BRCA"}
    entries = global_entries(write_local_lists(tmp_path), allowlist=allow)
    assert [e.name for e in entries] == ["ACE"]


def test_global_rejects_bad_local_lines(tmp_path):
    bad = write_lines(tmp_path / "bad.tsv", [LOCAL_HEADER, "-1\t2\t1\tA\tggp", "0.5\t2\t1\tB\tggp"])
    with pytest.raises(InputError, match=r"bad\.tsv:3: log10_probability must be <= 0"):
        global_entries([bad])
    twice = write_local_lists(tmp_path)[:1] * 2
    with pytest.raises(InputError, match=r"local1\.tsv:2: document '1' lists 'ACE' again"):
        global_entries(twice)


def test_format_global():
    text = blocklists.format_global([GlobalEntry("BRCA", "ggp", 3, 0.93)])
    assert text == ("name\ttype\tdocuments\tmean_error_probability\texpected_errors\n"
                    "BRCA\tggp\t3\t0.930000\t2.790000\n")


# ----------------------------------------------------------------------------- command line


def run_cli(*args: str) -> subprocess.CompletedProcess:
    """Run python -m bert_tf.blocklists from the repository root."""
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    return subprocess.run([sys.executable, "-m", "bert_tf.blocklists", *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


def test_cli_local_then_global(tmp_path):
    rows = ACE_ROWS + [("200", "ACE", (0.0, 0.0, 0.1, 0.0, 0.9))] * 2
    predictions = write_predictions(tmp_path / "p.tsv", rows)
    local = tmp_path / "out" / "local.tsv"
    result = run_cli("local", "--predictions", predictions, "--source_type", "ggp", "--threshold", "0.5",
                     "--min_count", "2", "--output", str(local))
    assert result.returncode == 0, result.stderr
    lines = local.read_text().splitlines()
    # Document 200: 0.01 / (0.01 + 0.81) = 0.01/0.82, log10 = -1.913814...
    assert [line.split("\t")[1:] for line in lines[1:]] == [["3", "100", "ACE", "ggp"], ["2", "200", "ACE", "ggp"]]
    assert float(lines[1].split("\t")[0]) == pytest.approx(ACE_LOG10)
    assert float(lines[2].split("\t")[0]) == pytest.approx(math.log10(0.01 / 0.82))
    out = tmp_path / "global.tsv"
    result = run_cli("global", "--local", str(local), "--min_docs", "2", "--output", str(out))
    assert result.returncode == 0, result.stderr
    # Error probabilities 1 - 0.27586 = 0.72414 and 1 - 0.012195 = 0.98780: mean 0.85597, x2 = 1.71194.
    mean = ((1 - 0.024 / 0.087) + (1 - 0.01 / 0.82)) / 2
    name, type_, docs, mean_text, expected = out.read_text().splitlines()[1].split("\t")
    assert (name, type_, docs) == ("ACE", "ggp", "2")
    assert float(mean_text) == pytest.approx(mean, abs=1e-6)
    assert float(expected) == pytest.approx(2 * mean, abs=1e-6)


def test_cli_error_exits_2_with_file_and_line(tmp_path):
    predictions = write_predictions(tmp_path / "p.tsv", ACE_ROWS)
    with open(predictions, "a", encoding="utf-8") as handle:
        handle.write("100\tT9\tggp\tl\tACE\tr\tggp\t0.1\n")
    output = tmp_path / "local.tsv"
    result = run_cli("local", "--predictions", predictions, "--source_type", "ggp", "--output", str(output))
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: {predictions}:5: expected 12 tab-separated columns, found 8"
    assert not output.exists()
    assert list(tmp_path.iterdir()) == [Path(predictions)]  # no temporary file left behind


def test_cli_missing_file_exits_2(tmp_path):
    result = run_cli("global", "--local", str(tmp_path / "none.tsv"), "--output", str(tmp_path / "g.tsv"))
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: {tmp_path / 'none.tsv'}: no such file"
