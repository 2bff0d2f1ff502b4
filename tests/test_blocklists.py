"""Tests of bert_tf.classifier.blocklists on small hand-made files; expected values worked out in the tests."""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import List, Sequence

import pytest

from bert_tf.classifier import blocklist_files, blocklist_rules, blocklists
from bert_tf.classifier.blocklist_rules import LocalOptions, RatioOptions, global_lines, local_lines
from bert_tf.errors import InputError

REPO_ROOT = Path(__file__).resolve().parents[1]
LABELS = ("che", "dis", "ggp", "org", "out")
HEADER = "doc_id\tannotation_id\tlabel\tleft_context\tmention\tright_context\tpredicted_label\t" + "\t".join(LABELS)


def row_cells(doc: str, mention: str, probs: Sequence[float], source: str, number: int) -> List[str]:
    """The seven fixed cells of a prediction row."""
    predicted = LABELS[max(range(len(probs)), key=probs.__getitem__)]
    return [doc, f"T{number}", source, "left ctx", mention, "right ctx", predicted]


def write_predictions(path: Path, rows: Sequence[tuple], published: bool = False, newline: str = "\n") -> str:
    """A prediction file of rows (doc_id, mention, probabilities[, column 3]), ours or the published format."""
    lines = [] if published else [HEADER]
    for number, (doc, mention, probs, *source) in enumerate(rows):
        cells = row_cells(doc, mention, probs, source[0] if source else "ggp", number)
        if published:
            lines.append("\t".join(cells + ["{" + ", ".join(f"'{l}': {p!r}" for l, p in zip(LABELS, probs)) + "}"]))
        else:
            lines.append("\t".join(cells + [repr(p) for p in probs]))
    path.write_bytes((newline.join(lines) + newline).encode("utf-8"))
    return str(path)


def write_lines(path: Path, lines: List[str]) -> str:
    """Write lines of text and return the path as a string."""
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return str(path)


def ggp(**kwargs) -> LocalOptions:
    """Local options for ggp rows scored as ggp (the pipeline's threshold 1.01 and min count 1 unless given)."""
    return LocalOptions(source_type="ggp", target_type=kwargs.pop("target_type", "ggp"), **kwargs)


#                  che  dis  ggp  org  out
ACE_ROWS = [
    ("100", "ACE", (0.1, 0.1, 0.4, 0.1, 0.3)),
    ("100", "ACE", (0.1, 0.1, 0.2, 0.1, 0.5)),
    ("100", "ACE", (0.1, 0.1, 0.3, 0.1, 0.4)),
]
# Products over the three rows: che = dis = org = 0.001, ggp = 0.4*0.2*0.3 = 0.024, out = 0.06; total 0.087.
ACE_P = 0.024 / 0.087  # 0.27586...
UNIFORM = (0.1, 0.1, 0.1, 0.1, 0.1)  # every label log10 = -1: normalised 1/5 each


def cells_of(lines: List[str]) -> List[List[str]]:
    """Split lines into tab-separated cells."""
    return [line.split("\t") for line in lines]


# ----------------------------------------------------------------------------- arithmetic and sort


def test_float_sum_left_to_right_and_compensated():
    values = [1.0, 1e100, 1.0, -1e100]
    assert blocklist_rules.float_sum(values) == 0.0  # Python 3.11 sum(): 1 + 1e100 loses the 1s
    assert blocklist_rules.float_sum(values, compensated=True) == 2.0  # Python 3.12 sum() keeps them
    assert blocklist_rules.float_sum([0.1] * 10) == 0.9999999999999999


def test_gnu_numeric_value_reads_no_exponent():
    value = blocklist_rules.gnu_numeric_value
    assert value("1e-05\tx") == 1
    assert value("inf\tx") == 0 and value("nan") == 0 and value("") == 0
    assert value("-1000\tx") == -1000 and value("-.5") == -0.5 and value("007.50") == 7.5
    assert value("-0\tq") == value("0\tp")


def test_sort_numeric_reverse_ties_compare_whole_lines_reversed():
    lines = ["1\tb", "1\ta", "1e-05\tz", "2\tx", "inf\ty", "-0\tq", "0\tp", ".5\tk", "-1000\tm", "1.5e+16\tn", "01\tc"]
    # GNU sort -rn (checked with coreutils 9.1, LC_ALL=C.UTF-8): the numbers 2, 1.5, 1 ... then ties in reverse.
    expected = ["2\tx", "1.5e+16\tn", "1e-05\tz", "1\tb", "1\ta", "01\tc", ".5\tk", "inf\ty", "0\tp", "-0\tq",
                "-1000\tm"]
    assert blocklist_rules.sort_numeric_reverse(lines) == expected


@pytest.mark.skipif(shutil.which("sort") is None, reason="GNU sort is not installed")
def test_sort_numeric_reverse_agrees_with_gnu_sort():
    lines = ["3.87e-05\t16\tb", "0.00035\t8\ta", "7.2\t8\ttie2", "7.2\t8\ttie1", "7.20\t8\tx", "inf\tCAT\t6",
             "inf\tCAT\t11", "-1.5\tq", "12\tz", "1.2e+2\tw", "é\t1", "e\t1"]
    gnu = subprocess.run(["sort", "-rn"], input="".join(l + "\n" for l in lines), capture_output=True, text=True,
                         env=dict(os.environ, LC_ALL="C.UTF-8"), check=True).stdout.splitlines()
    assert blocklist_rules.sort_numeric_reverse(lines) == gnu


# ----------------------------------------------------------------------------- local


def test_three_rows_of_a_name_are_combined(tmp_path):
    path = write_predictions(tmp_path / "p.tsv", ACE_ROWS)
    [line] = cells_of(list(local_lines([path], ggp())))
    assert line[1:] == ["3", "100", "ACE", "ggp"]
    assert float(line[0]) == pytest.approx(math.log10(ACE_P), abs=1e-12)


def test_output_is_the_published_text(tmp_path):
    path = write_predictions(tmp_path / "p.tsv", [("D1", "x", UNIFORM)])
    # Five labels of equal probability: 1/5 each; printed as Python's str(float).
    assert list(local_lines([path], ggp())) == [f"{math.log10(0.2)!r}\t1\tD1\tx\tggp"]
    assert list(local_lines([path], ggp(probability_output=True))) == ["0.20000\t1\tD1\tx\tggp"]


def test_threshold_is_a_strict_bound_and_above_one_lists_everything(tmp_path):
    half = (1e-30, 1e-30, 0.5, 1e-30, 0.5)  # p(ggp) = 1 / (1 + 1 + 3e-30) = 0.5 exactly
    path = write_predictions(tmp_path / "p.tsv", [("1", "X", half), ("1", "Y", (0.0, 0.0, 1.0, 0.0, 0.0))])
    assert [c[3] for c in cells_of(list(local_lines([path], ggp(threshold=0.5))))] == []
    assert [c[3] for c in cells_of(list(local_lines([path], ggp(threshold=0.5000001))))] == ["X"]
    lines = list(local_lines([path], ggp(threshold=1.01)))
    assert [c[3] for c in cells_of(lines)] == ["X", "Y"]
    assert lines[1].startswith("0.0\t")  # p(ggp) = 1: log10 = 0.0


def test_underflow_prints_log10_zero(tmp_path):
    # p(ggp) = 10**-600 / (1 + 10**-600 ...) underflows to 0: the published -1000.
    rows = [("1", "gone", (1e-300, 1e-300, 1e-300, 1e-300, 1.0))] * 2
    path = write_predictions(tmp_path / "p.tsv", rows)
    assert list(local_lines([path], ggp())) == ["-1000\t2\t1\tgone\tggp"]
    assert list(local_lines([path], ggp(probability_output=True))) == ["0.00000\t2\t1\tgone\tggp"]


def test_zero_probability_counts_as_1e_300(tmp_path):
    path = write_predictions(tmp_path / "p.tsv", [("1", "z", (0.0, 0.0, 0.1, 0.0, 0.9))])
    [line] = cells_of(list(local_lines([path], ggp())))
    assert float(line[0]) == pytest.approx(math.log10(0.1), abs=1e-12)  # the 1e-300s add nothing


def test_only_rows_of_the_source_type_count(tmp_path):
    rows = [("1", "A", (0.1, 0.1, 0.2, 0.1, 0.5), "ggp"), ("1", "A", UNIFORM, "che"), ("1", "B", UNIFORM, "che")]
    path = write_predictions(tmp_path / "p.tsv", rows)
    [line] = cells_of(list(local_lines([path], ggp())))
    # One ggp row of A: 0.2 / (0.1*3 + 0.2 + 0.5) = 0.2.
    assert line[1:4] == ["1", "1", "A"] and float(line[0]) == pytest.approx(math.log10(0.2), abs=1e-12)
    every = cells_of(list(local_lines([path], ggp(all_rows=True))))
    assert [(c[3], c[1]) for c in every] == [("A", "2"), ("B", "1")]
    by_file = cells_of(list(local_lines([path], ggp(source_types={"B": {"ggp"}}))))
    assert [(c[3], c[1]) for c in by_file] == [("B", "1")]


def test_target_type_min_count_and_names_in_first_seen_order(tmp_path):
    rows = [("9", "zeta", UNIFORM), ("9", "alpha", UNIFORM), ("9", "zeta", UNIFORM)]
    path = write_predictions(tmp_path / "p.tsv", rows)
    assert [c[3] for c in cells_of(list(local_lines([path], ggp())))] == ["zeta", "alpha"]
    assert [c[3] for c in cells_of(list(local_lines([path], ggp(min_count=2))))] == ["zeta"]
    [line] = cells_of(list(local_lines([path], ggp(target_type="out", min_count=2))))
    assert line[4] == "out" and float(line[0]) == pytest.approx(math.log10(0.2), abs=1e-12)


def test_documents_in_file_order_and_a_returning_document_starts_again(tmp_path):
    rows = [("20", "a", UNIFORM), ("3", "a", UNIFORM), ("20", "a", UNIFORM)]
    path = write_predictions(tmp_path / "p.tsv", rows)
    # As the published script: a new document starts whenever doc_id changes.
    assert [(c[2], c[1]) for c in cells_of(list(local_lines([path], ggp())))] == [("20", "1"), ("3", "1"), ("20", "1")]


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_both_formats_give_identical_lists(tmp_path, newline):
    rows = ACE_ROWS + [("7", "BRCA", (0.25, 0.125, 0.5, 1e-05, 0.125)), ("7", "BRCA", UNIFORM)]
    ours = write_predictions(tmp_path / "ours.tsv", rows)
    published = write_predictions(tmp_path / "published.tsv", rows, published=True, newline=newline)
    assert list(local_lines([ours], ggp())) == list(local_lines([published], ggp()))
    assert len(list(local_lines([ours], ggp()))) == 2


@pytest.mark.parametrize("published, bad, problem", [
    (False, "1\tT9\tggp\tl\tACE\tr\tggp\t0.1\t0.1\t0.4\t0.1", "expected 12 tab-separated columns, found 11"),
    (False, "1\tT9\tggp\tl\tACE\tr\tggp\t0.1\t0.1\tx\t0.1\t0.3", "probability of 'ggp' is not a number"),
    (False, "1\tT9\tggp\tl\tACE\tr\tggp\t0.1\t0.1\t1.5\t0.1\t0.3", "probability of 'ggp' is not in [0, 1]"),
    (True, "1\tT9\tggp\tl\tACE\tr\tggp", "expected 8 tab-separated columns, found 7"),
    (True, "1\tT9\tggp\tl\tACE\tr\tggp\t{'che': 0.1, 'dis'", "not a probability dict"),
    (True, "1\tT9\tggp\tl\tACE\tr\tggp\t{'che': 0.1}", "probability labels ['che'] differ from the first row's"),
    (True, "1\tT9\tggp\tl\tACE\tr\tggp\t{'che': 0.1, 'dis': 0.1, 'ggp': -0.5, 'org': 0.1, 'out': 0.1}",
     "probability of 'ggp' is not in [0, 1]"),
])
def test_bad_rows_name_file_and_line(tmp_path, published, bad, problem):
    path = write_predictions(tmp_path / "p.tsv", ACE_ROWS[:2], published=published)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(bad + "\n")
    line = 3 if published else 4
    with pytest.raises(InputError) as info:
        list(local_lines([path], ggp()))
    assert str(info.value).startswith(f"{path}:{line}: {problem}")


def test_neither_format_and_unknown_target(tmp_path):
    bad = write_lines(tmp_path / "bad.tsv", ["doc\tmention\tggp"])
    with pytest.raises(InputError, match=r"bad\.tsv:1: neither our header"):
        list(local_lines([bad], ggp()))
    empty = write_lines(tmp_path / "empty.tsv", [])
    with pytest.raises(InputError, match=r"empty\.tsv:1: neither"):
        list(local_lines([empty], ggp()))
    path = write_predictions(tmp_path / "p.tsv", ACE_ROWS, published=True)
    with pytest.raises(InputError, match=r"p\.tsv:1: target type 'gene' is not one of the labels"):
        list(local_lines([path], ggp(target_type="gene")))


# ----------------------------------------------------------------------------- global and nontype


def local_list(tmp_path: Path, name: str, lines: List[str]) -> str:
    """A local list file."""
    return write_lines(tmp_path / name, lines)


def test_global_mean_error_and_published_columns(tmp_path):
    first = local_list(tmp_path, "a.tsv", ["-1\t2\t1\tBRCA\tggp", "-2\t3\t1\tACE\tggp", "-1\t2\t1\tSOLO\tggp"])
    second = local_list(tmp_path, "b.tsv", ["-2\t1\t2\tBRCA\tggp", "0.0\t4\t2\tACE\tggp"])
    lines = global_lines([first, second], min_docs=2, threshold=0.5)
    # BRCA: errors 1 - 0.1 = 0.9 and 1 - 0.01 = 0.99. ACE: 0.99 and 0 -> mean 0.495 < 0.5. SOLO: one document.
    mean = (0.9 + 0.99) / 2
    assert lines == [f"{mean * 2!r}\t2\t{mean!r}\tBRCA\tggp"]
    assert [c[3] for c in cells_of(global_lines([first, second], 2, 0.495))] == ["BRCA", "ACE"]  # >= threshold
    assert [c[3] for c in cells_of(global_lines([first, second], 1, 0.0))] == ["BRCA", "ACE", "SOLO"]


def test_global_sorts_as_sort_rn(tmp_path):
    # Mean errors 1e-05-ish print in e-notation, which sort -n reads by their mantissa only.
    tiny = math.log10(1 - 2e-05)
    lines = [f"{tiny!r}\t1\t{d}\tsure\tggp" for d in (1, 2)] + [f"{math.log10(0.5)!r}\t1\t{d}\thalf\tggp" for d in (1, 2)]
    out = global_lines([local_list(tmp_path, "a.tsv", lines)], 2, 0.0)
    assert [c[3] for c in cells_of(out)] == ["sure", "half"]  # '4.0...e-05' reads as 4 > '1.0'
    assert "e-05" in out[0]


def test_never_block_pairs(tmp_path):
    path = local_list(tmp_path, "a.tsv", [f"-2\t1\t{d}\t{n}\t{t}\t" for d in (1, 2)
                                          for n, t in (("insulin", "ggp"), ("insulin", "che"), ("TNF", "ggp"))])
    assert [(c[3], c[4]) for c in cells_of(global_lines([path]))] == [("insulin", "che"), ("TNF", "ggp")]
    never = blocklists.read_never_block(write_lines(tmp_path / "never.tsv", ["TNF\tggp"]))
    assert [(c[3], c[4]) for c in cells_of(global_lines([path], never_block=never))] == [
        ("insulin", "ggp"), ("insulin", "che")]


@pytest.mark.parametrize("bad, problem", [
    ("-1\t2\t1\tA", "expected 5 tab-separated columns"),
    ("x\t2\t1\tA\tggp", "the log10 probability must be a number"),
    ("0.5\t2\t1\tA\tggp", "log10 probability must be <= 0"),
])
def test_global_rejects_bad_local_lines(tmp_path, bad, problem):
    path = local_list(tmp_path, "bad.tsv", ["-1\t2\t1\tA\tggp", bad])
    with pytest.raises(InputError) as info:
        global_lines([path])
    assert str(info.value).startswith(f"{path}:2: {problem}")


# ----------------------------------------------------------------------------- local block/allow lists


def nontype_and_local(tmp_path: Path):
    """A non-type table and a local list: CAT globally blocked (12 docs, 0.6), p53 not (5 docs)."""
    table = blocklists.read_nontype_table(write_lines(tmp_path / "non.tsv", [
        "7.2\t12\t0.6\tCAT\tggp", "1.0\t5\t0.2\tp53\tggp"]))
    local = local_list(tmp_path, "local.tsv", [
        "0.0\t3\t7\tCAT\tggp", "-1\t2\t8\tCAT\tggp", "-4\t3\t9\tp53\tggp", "-2\t1\t10\tp53\tggp",
        "-4\t1\t11\tnew\tggp"])
    return table, local


def test_allowlist_keeps_globally_blocked_names_certain_here(tmp_path):
    table, local = nontype_and_local(tmp_path)
    lines = blocklists.ratio_lines(table, [local], RatioOptions(False, 1e15, 0.3))
    # CAT in doc 7: l = 1, g = 1 - 0.6 = 0.4 > 0.3, l > 1 - g, ratio infinite. In doc 8 l = 0.1 < 0.6.
    assert lines == ["inf\tCAT\t7\t3\t0.40000\t1.00000"]
    assert blocklists.ratio_lines(table, [local], RatioOptions(False, 1e15, 0.45)) == []


def test_local_ratio_blocks_names_unlikely_here(tmp_path):
    table, local = nontype_and_local(tmp_path)
    lines = blocklists.ratio_lines(table, [local], RatioOptions(True, 1000.0))
    # p53, doc 9: g = 0.8, l = 1e-4; inverted: g' = 1 - g, l' = 1 - l; ratio = l'g' / ((1-l')(1-g')) ~ 2499.75.
    g, l = 1 - 0.2, 10 ** -4.0
    g2, l2 = 1 - g, 1 - l
    ratio = (l2 * g2) / ((1 - l2) * (1 - g2))
    assert ratio == pytest.approx(0.9999 * 0.2 / (1e-4 * 0.8), rel=1e-9)
    assert lines == [f"{ratio!r}\tp53\t9\t3\t0.80000\t0.00010"]  # doc 10: ratio 24.75; CAT globally blocked
    assert blocklists.ratio_lines(table, [local], RatioOptions(True, 2500.0)) == []
    diff = blocklists.ratio_lines(table, [local], RatioOptions(True, 1000.0, function="diff"))
    assert diff == ["0.19990\tp53\t9\t3\t0.80000\t0.00010"]  # l' - (1 - g') = 0.9999 - 0.8


def test_nontype_table_rejects_duplicates(tmp_path):
    path = write_lines(tmp_path / "non.tsv", ["1\t2\t0.5\tA\tggp", "1\t2\t0.5\tA\tggp"])
    with pytest.raises(InputError, match=r"non\.tsv:2: A/ggp is listed twice"):
        blocklists.read_nontype_table(path)


# ----------------------------------------------------------------------------- pipeline


def small_run_dir(root: Path) -> Path:
    """A RUN_DIR with one prediction file a type; 'TNF' is ggp in one document and not in the other."""
    for type_ in ("ggp", "che", "org", "dis"):
        probs = tuple(0.2 if label == type_ else 0.8 if label == "out" else 1e-05 for label in LABELS)
        sure = tuple(0.9 if label == type_ else 0.1 if label == "out" else 1e-05 for label in LABELS)
        rows = [("1", "TNF", probs, type_), ("2", "TNF", sure, type_), ("3", "bad", probs, type_),
                ("4", "bad", probs, type_)]
        directory = root / f"{type_}-predictions"
        directory.mkdir(parents=True)
        write_predictions(directory / "output_with_probabilities_0.tsv", rows, published=type_ == "ggp")
    return root


def test_pipeline_global_list_sees_every_document(tmp_path):
    run_dir = small_run_dir(tmp_path / "run")
    out = tmp_path / "out"
    blocklists.run_pipeline(str(run_dir), str(out), blocklists.PipelineOptions())
    # TNF: p = 0.2 / (0.2 + 0.8 + 3e-05) and 0.9 / (1 + 3e-05): mean error ~0.45 < 0.5, so not blocked; a local
    # step at threshold 0.5 would have kept only document 1 (error 0.8) and blocked it.
    assert (out / "auto_global.tsv").read_text() == "bad\tt\n"
    local = (out / "local_blacklists-01-ggp" / "output_with_probabilities_0.tsv").read_text().splitlines()
    assert [c[2:4] for c in cells_of(local)] == [["1", "TNF"], ["2", "TNF"], ["3", "bad"], ["4", "bad"]]
    assert (out / "dis_global_min_mentions_1_min_docs_2_threshold_0.85.tsv").read_text() == ""  # 0.8 < 0.85
    assert sorted(p.name for p in out.iterdir()) == sorted(blocklist_files.output_names(blocklists.PipelineOptions()).values())


def test_pipeline_refuses_existing_outputs_and_writes_nothing_on_bad_input(tmp_path):
    run_dir = small_run_dir(tmp_path / "run")
    blocklists.run_pipeline(str(run_dir), None, blocklists.PipelineOptions())  # into RUN_DIR, as published
    assert (run_dir / "auto_local.tsv").exists()
    with pytest.raises(InputError, match="auto_global.tsv exists already"):
        blocklists.run_pipeline(str(run_dir), None, blocklists.PipelineOptions())
    blocklists.run_pipeline(str(run_dir), None, blocklists.PipelineOptions(), overwrite=True)
    with open(run_dir / "dis-predictions" / "output_with_probabilities_0.tsv", "a") as handle:
        handle.write("5\tT9\tdis\tl\tx\tr\tdis\t0.1\n")
    out = tmp_path / "new"
    with pytest.raises(InputError, match=r"dis-predictions/output_with_probabilities_0.tsv:6: expected 12"):
        blocklists.run_pipeline(str(run_dir), str(out), blocklists.PipelineOptions())
    assert not out.exists()


# ----------------------------------------------------------------------------- command line


def run_cli(*args: str) -> subprocess.CompletedProcess:
    """Run python -m bert_tf.classifier.blocklists from the repository root."""
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    return subprocess.run([sys.executable, "-m", "bert_tf.classifier.blocklists", *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


def test_cli_local_then_global(tmp_path):
    rows = ACE_ROWS + [("200", "ACE", (0.0, 0.0, 0.1, 0.0, 0.9))] * 2
    predictions = write_predictions(tmp_path / "p.tsv", rows, published=True)
    local = tmp_path / "local.tsv"
    result = run_cli("local", "-m", "1", "-t", "1.01", "-s", "ggp", "-T", "ggp", predictions, "--output", str(local))
    assert result.returncode == 0, result.stderr
    assert [c[1:] for c in cells_of(local.read_text().splitlines())] == [["3", "100", "ACE", "ggp"],
                                                                         ["2", "200", "ACE", "ggp"]]
    out = tmp_path / "global.tsv"
    result = run_cli("global", "-m", "2", str(local), "--output", str(out))
    assert result.returncode == 0, result.stderr
    # Errors 1 - 0.024/0.087 and 1 - 0.01/0.82 (two rows of 0.1 vs 0.9): mean 0.85597.
    [line] = cells_of(out.read_text().splitlines())
    mean = ((1 - ACE_P) + (1 - 0.01 / 0.82)) / 2
    assert (line[1], line[3], line[4]) == ("2", "ACE", "ggp")
    assert float(line[2]) == pytest.approx(mean, abs=1e-12) and float(line[0]) == pytest.approx(2 * mean, abs=1e-12)
    result = run_cli("global", str(local), "--output", str(out))
    assert result.returncode == 2 and "exists already; use --overwrite" in result.stderr


def test_cli_error_exits_2_with_file_and_line_and_writes_nothing(tmp_path):
    predictions = write_predictions(tmp_path / "p.tsv", ACE_ROWS)
    with open(predictions, "a", encoding="utf-8") as handle:
        handle.write("100\tT9\tggp\tl\tACE\tr\tggp\t0.1\n")
    output = tmp_path / "local.tsv"
    result = run_cli("local", "-s", "ggp", predictions, "--output", str(output))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines[-1] == f"error: {predictions}:5: expected 12 tab-separated columns, found 8"
    assert all(line.startswith("note: ") for line in lines[:-1])  # e.g. which temperature the predictions carry
    assert list(tmp_path.iterdir()) == [Path(predictions)]  # no output, no temporary file


def test_cli_pipeline_missing_type_exits_2(tmp_path):
    (tmp_path / "ggp-predictions").mkdir()
    result = run_cli("pipeline", "--run_dir", str(tmp_path), "--types", "ggp")
    assert result.returncode == 2
    assert result.stderr.strip() == (f"error: {tmp_path / 'ggp-predictions'}: no prediction files "
                                     "output_with_probabilities_* for type ggp")


def test_temperature_note_reads_prediction_info(tmp_path):
    assert "unknown" in blocklist_files.temperature_note(str(tmp_path))
    (tmp_path / "prediction_info.json").write_text('{"temperature": 1.7321}')
    assert blocklist_files.temperature_note(str(tmp_path)) == "predictions calibrated at temperature 1.732 (--calibrate)"
    (tmp_path / "prediction_info.json").write_text('{"temperature": null}')
    assert "not calibrated" in blocklist_files.temperature_note(str(tmp_path))
    (tmp_path / "prediction_info.json").write_text("{broken")
    with pytest.raises(InputError, match="prediction_info.json"):
        blocklist_files.temperature_note(str(tmp_path))


def test_pipeline_flags_default_to_the_published_options() -> None:
    parser = blocklists.build_parser()
    args = parser.parse_args(["pipeline", "--run_dir", "runs"])
    assert blocklists.pipeline_options(args) == blocklists.PipelineOptions() == blocklists.PUBLISHED
    changed = parser.parse_args(["pipeline", "--run_dir", "runs", "--types", "che", "--block_ratio", "10",
                                 "--global_threshold_per_type", "che:0.7", "--compensated_sum"])
    options = blocklists.pipeline_options(changed)
    assert (options.types, options.local_list_types, options.allowlist_types) == (["che"], ["che"], [])
    assert (options.block_ratio, options.threshold("che"), options.compensated_sum) == (10.0, 0.7, True)


def test_each_step_command_defaults_to_its_published_script():
    """make_local_blacklist.py: -t 0.5 -m 2 -s ggp -T ggp; global_blacklist_candidates.py: -m 10 -t 0.5;
    make_local_bw_lists.py: no --ratio, no --global-ggp-prob, -m 10 -t 0.5 -f ratio."""
    from bert_tf.classifier.blocklists import build_parser

    def defaults(*argv):
        args = vars(build_parser().parse_args([*argv, "--output", "x"]))
        return {k: v for k, v in args.items() if k not in ("run", "output", "overwrite", "compensated_sum")}

    assert defaults("local", "p.tsv") == {
        "command": "local", "predictions": ["p.tsv"], "source_type": "ggp", "target_type": "ggp", "threshold": 0.5,
        "min_count": 2, "probability": False, "all_rows": False, "source_types_file": None, "lowercase_names": False}
    for command, threshold in (("global", 0.5), ("nontype", 0.0)):
        assert defaults(command, "l.tsv") == {"command": command, "local": ["l.tsv"], "min_docs": 10,
                                              "threshold": threshold, "never_block": None}
    common = {"local": ["l.tsv"], "nontype": "n.tsv", "ratio": None, "global_min_docs": 10,
              "global_threshold": 0.5, "function": "ratio", "never_block": None}
    assert defaults("local-ratio", "--nontype", "n.tsv", "l.tsv") == {"command": "local-ratio", **common}
    assert defaults("allowlist", "--nontype", "n.tsv", "l.tsv") == {"command": "allowlist", **common,
                                                                      "global_type_probability": None}


def test_without_a_ratio_the_bw_lists_keep_every_line_the_other_conditions_keep(tmp_path):
    """make_local_bw_lists.py without --ratio: no odds-ratio condition (p53 in doc 10, odds 24.75, is kept too)."""
    table, local = nontype_and_local(tmp_path)
    lines = [line.split("\t") for line in blocklists.ratio_lines(table, [local], RatioOptions(True, None))]
    assert [line[1:] for line in lines] == [["p53", "9", "3", "0.80000", "0.00010"],
                                            ["p53", "10", "1", "0.80000", "0.01000"]]
    assert [float(line[0]) for line in lines] == pytest.approx([0.9999 * 0.2 / (1e-4 * 0.8), 0.99 * 0.2 / (0.01 * 0.8)])
    assert blocklists.ratio_lines(table, [local], RatioOptions(False, None)) == [
        "inf\tCAT\t7\t3\t0.40000\t1.00000"]  # the allowlist without -g or a ratio: as with them here
