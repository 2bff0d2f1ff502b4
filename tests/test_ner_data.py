"""Tests for bert_tf.ner.data and scripts/conll_to_csv.py."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from bert_tf.ner.data import (
    NerExample,
    check_known_tags,
    find_ner_files,
    label_list_from_examples,
    read_conll,
    read_ner_csv,
    read_plain_text,
    read_words_file,
    split_train_val_test,
    validate_tag,
    write_ner_csv,
)
from bert_tf.errors import InputError
from conftest import SHARED_DATA, expect_error, write

REPO = Path(__file__).resolve().parent.parent
BC5CDR_DEVEL = SHARED_DATA / "bc5cdr_chem" / "devel.tsv"
CONVERT_SCRIPT = REPO / "scripts" / "conll_to_csv.py"
needs_bc5cdr = pytest.mark.skipif(not BC5CDR_DEVEL.is_file(), reason=f"shared data set not found: {BC5CDR_DEVEL}")

HEADER = ",tokens,tags\n"
ROW_1 = "0,\"['Sauli', 'Niinistö', 'vieraili', 'Oulussa']\",\"['B-PERSON', 'I-PERSON', 'O', 'B-GPE']\"\n"
ROW_2 = "1,\"['Hei', '!']\",\"['O', 'O']\"\n"


# ----------------------------------------------------------------------------- read_ner_csv: valid input


def test_reads_pandas_layout_with_index_column(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + ROW_1 + ROW_2)
    examples = read_ner_csv(path)
    assert examples == [
        NerExample(("Sauli", "Niinistö", "vieraili", "Oulussa"), ("B-PERSON", "I-PERSON", "O", "B-GPE"), 2, path),
        NerExample(("Hei", "!"), ("O", "O"), 3, path),
    ]


def test_line_numbers_follow_blank_lines_and_multiline_records(tmp_path: Path) -> None:
    multiline = "\"['a',\n 'b']\",\"['O',\n\n 'O']\"\n"
    path = write(tmp_path, "tokens,tags\n\n" + multiline + "   \n" + "\"['c']\",\"['B-X']\"\n")
    assert [example.line for example in read_ner_csv(path)] == [3, 8]


def test_accepts_bom_crlf_tuples_empty_and_spaced_tokens(tmp_path: Path) -> None:
    content = "\ufefftags,tokens\r\n\"('O', 'O', 'O')\",\"('', 'New York', 'x')\"\r\n"
    path = write(tmp_path, content)
    [example] = read_ner_csv(path)
    assert example.tokens == ("", "New York", "x")
    assert example.tags == ("O", "O", "O")


def test_tags_optional_when_not_required(tmp_path: Path) -> None:
    path = write(tmp_path, "tokens\n\"['a', 'b']\"\n")
    assert read_ner_csv(path, require_tags=False) == [NerExample(("a", "b"), None, 2, path)]


def test_huge_field_is_accepted(tmp_path: Path) -> None:
    tokens = ["w" * 50] * 5000  # one cell of about 270k characters, above the csv module's default limit
    path = write(tmp_path, "tokens,tags\n" + f"\"{tokens}\",\"{['O'] * len(tokens)}\"\n")
    [example] = read_ner_csv(path)
    assert len(example.tokens) == 5000


# ----------------------------------------------------------------------------- read_ner_csv: errors


def test_missing_file_and_directory(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.csv")
    expect_error(lambda: read_ner_csv(missing), missing, None, "file not found")
    expect_error(lambda: read_ner_csv(str(tmp_path)), str(tmp_path), None, "directory")


def test_not_utf8_names_line_of_first_bad_byte(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER.encode() + ROW_2.encode() + b"2,\"['caf\xe9']\",\"['O']\"\n" + b"\xff\n")
    expect_error(lambda: read_ner_csv(path), path, 3, "UTF-8", "0xe9")


def test_not_utf8_line_counts_cr_line_ends(tmp_path: Path) -> None:
    path = write(tmp_path, b"tokens,tags\r\"['a']\",\"['O']\"\r\n\xc3(")
    expect_error(lambda: read_ner_csv(path), path, 3, "UTF-8")


@pytest.mark.parametrize("content", ["", "\n\n", "\ufeff"])
def test_empty_file(tmp_path: Path, content: str) -> None:
    path = write(tmp_path, content)
    expect_error(lambda: read_ner_csv(path), path, None, "no examples")


def test_header_only(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "\n")
    expect_error(lambda: read_ner_csv(path), path, None, "no examples", "only a header")


def test_missing_columns_are_named_with_those_found(tmp_path: Path) -> None:
    path = write(tmp_path, "\nwords,labels\n\"['a']\",\"['O']\"\n")
    expect_error(lambda: read_ner_csv(path), path, 2, "missing column 'tokens' and 'tags'", "'words', 'labels'")
    path = write(tmp_path, "tokens,labels\n\"['a']\",\"['O']\"\n")
    expect_error(lambda: read_ner_csv(path), path, 1, "missing column 'tags'", "'tokens', 'labels'")
    assert read_ner_csv(path, require_tags=False)[0].tags is None


def test_duplicate_column(tmp_path: Path) -> None:
    path = write(tmp_path, "tokens,tags,tokens\n\"['a']\",\"['O']\",\"['a']\"\n")
    expect_error(lambda: read_ner_csv(path), path, 1, "'tokens' appears 2 times")


def test_cell_that_is_not_a_list_literal_is_quoted_shortly(tmp_path: Path) -> None:
    long_cell = "Sauli Niinistö vieraili Oulussa " * 10
    path = write(tmp_path, HEADER + ROW_2 + f"2,{long_cell},\"['O']\"\n")
    message = expect_error(lambda: read_ner_csv(path), path, 3, "'tokens' is not a Python list", "'Sauli Niinist")
    assert len(message) < len(path) + 120
    for cell in ["\"['a', 'b'\"", "\"{'a': 1}\"", "\"[open('x')]\"", "\"__import__('os')\"", "'a'"]:
        path = write(tmp_path, HEADER + f"0,{cell},\"['O']\"\n")
        expect_error(lambda: read_ner_csv(path), path, 2, "is not a Python list of strings")


def test_elements_must_be_strings(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + ROW_2 + "2,\"['a', 5]\",\"['O', 'O']\"\n")
    expect_error(lambda: read_ner_csv(path), path, 3, "'tokens': element 2 is a int, not a string")
    path = write(tmp_path, HEADER + "0,\"['a']\",\"[None]\"\n")
    expect_error(lambda: read_ner_csv(path), path, 2, "'tags': element 1 is a NoneType")


def test_length_mismatch_gives_both_lengths(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + ROW_1 + "1,\"['a', 'b', 'c']\",\"['O', 'O']\"\n")
    expect_error(lambda: read_ner_csv(path), path, 3, "3 tokens but 2 tags")


def test_empty_rows(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + ROW_2 + "2,[],[]\n")
    expect_error(lambda: read_ner_csv(path), path, 3, "empty token list")
    path = write(tmp_path, HEADER + ROW_2 + ",,\n")
    expect_error(lambda: read_ner_csv(path), path, 3, "empty cell in column 'tokens'")
    path = write(tmp_path, HEADER + "0,\"['a']\",  \n")
    expect_error(lambda: read_ner_csv(path), path, 2, "empty cell in column 'tags'")


def test_row_width_must_match_header(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + ROW_2 + "\"['a']\",\"['O']\"\n")
    expect_error(lambda: read_ner_csv(path), path, 3, "2 fields but the header has 3")


@pytest.mark.parametrize("tag", ["B-", "I-", "X-FOO", "b-GENE", "O-X", "B GENE", "B-GENE X", "", "o", "BGENE"])
def test_invalid_tag_is_named(tmp_path: Path, tag: str) -> None:
    path = write(tmp_path, "tokens,tags\n" + f"\"['a', 'b']\",\"['O', {tag!r}]\"\n")
    expect_error(lambda: read_ner_csv(path), path, 2, f"invalid tag {tag!r}")


def test_csv_syntax_error_has_line(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + ROW_2 + "2,\"['a']\"x,\"['O']\"\n")
    expect_error(lambda: read_ner_csv(path), path, 3, "CSV syntax error")
    path = write(tmp_path, HEADER + ROW_2 + ROW_2 + "3,\"['a'],['O']\n\n")
    expect_error(lambda: read_ner_csv(path), path, 4, "CSV syntax error")


# ----------------------------------------------------------------------------- tags and labels


def test_validate_tag() -> None:
    assert all(validate_tag(tag) for tag in ["O", "B-X", "I-Chemical", "B-GENE-PRODUCT", "I-é"])
    assert not any(validate_tag(tag) for tag in ["", "B", "I", "B-", "E-X", "S-X", "B-a b", "o", " O", "B-X\n"])


def test_label_list() -> None:
    examples = [NerExample(("a", "b"), ("I-Z", "B-A"), 1), NerExample(("c",), ("O",), 2), NerExample(("d",), None, 3)]
    assert label_list_from_examples(examples) == ["O", "B-A", "I-Z"]
    assert label_list_from_examples([]) == ["O"]


def test_check_known_tags_lists_every_unknown_tag_with_first_line() -> None:
    examples = [
        NerExample(("a",), ("O",), 2),
        NerExample(("b", "c"), ("B-NEW", "I-NEW"), 5),
        NerExample(("d",), ("B-ALSO",), 9),
        NerExample(("e",), ("B-NEW",), 12),
    ]
    check_known_tags(examples[:1], ["O", "B-X"], "val.csv")
    message = expect_error(lambda: check_known_tags(examples, ["O", "B-X"], "val.csv"), "val.csv", 5)
    assert message.endswith("'B-ALSO' (line 9), 'B-NEW' (line 5), 'I-NEW' (line 5); list every tag with --labels_file")
    message = expect_error(lambda: check_known_tags(examples, ["O", "B-X"], "val.csv", "tags.txt"), "val.csv", 5)
    assert "not in --labels_file tags.txt: 'B-ALSO' (line 9)" in message


# ----------------------------------------------------------------------------- writing


TRICKY_TOKENS = ("", "New York", 'say "hi"', "it's", "a,b", "back\\slash", "line\nbreak", "tab\t", "Niinistö", "[x]")


def test_write_round_trips_through_reader_and_pandas(tmp_path: Path) -> None:
    examples = [
        NerExample(TRICKY_TOKENS, ("B-LOC",) + ("I-LOC",) * (len(TRICKY_TOKENS) - 1), 0),
        NerExample(("only",), ("O",), 0),
    ]
    path = str(tmp_path / "out" / "train.csv")
    write_ner_csv(path, examples)
    back = read_ner_csv(path)
    assert [(e.tokens, e.tags, e.line) for e in back] == [(e.tokens, e.tags, line) for e, line in zip(examples, [2, 3])]
    frame = pd.read_csv(path)
    assert list(frame.columns) == ["tokens", "tags"]
    assert [tuple(ast.literal_eval(cell)) for cell in frame["tokens"]] == [e.tokens for e in examples]
    assert [tuple(ast.literal_eval(cell)) for cell in frame["tags"]] == [e.tags for e in examples]
    assert sorted(os.listdir(tmp_path / "out")) == ["train.csv"]  # no temporary file left behind


def test_reads_what_pandas_writes(tmp_path: Path) -> None:
    path = str(tmp_path / "pandas.csv")
    pd.DataFrame({"tokens": [list(TRICKY_TOKENS)], "tags": [["O"] * len(TRICKY_TOKENS)]}).to_csv(path)
    [example] = read_ner_csv(path)
    assert example.tokens == TRICKY_TOKENS


def test_write_untagged_examples(tmp_path: Path) -> None:
    path = str(tmp_path / "words.csv")
    write_ner_csv(path, [NerExample(("a", "b"), None, 0)])
    assert Path(path).read_text(encoding="utf-8").splitlines()[0] == "tokens"
    assert read_ner_csv(path, require_tags=False)[0].tokens == ("a", "b")
    with pytest.raises(ValueError):
        write_ner_csv(path, [NerExample(("a",), None, 0), NerExample(("b",), ("O",), 0)])


# ----------------------------------------------------------------------------- splitting


def numbered_examples(count: int) -> list:
    """`count` distinct one-token examples."""
    return [NerExample((str(i),), ("O",), i + 2, "data.csv") for i in range(count)]


def test_split_sizes_determinism_and_partition() -> None:
    examples = numbered_examples(100)
    train, val, test = split_train_val_test(examples, 0.1, seed=42)
    assert (len(train), len(val), len(test)) == (80, 10, 10)
    assert sorted(train + val + test, key=lambda e: e.line) == examples
    assert (train, val, test) == split_train_val_test(examples, 0.1, seed=42)
    assert (train, val, test) != split_train_val_test(examples, 0.1, seed=43)
    assert [e.line for e in val] == sorted(e.line for e in val)  # file order kept inside each part


def test_split_gives_at_least_one_each() -> None:
    assert [len(part) for part in split_train_val_test(numbered_examples(3), 0.01, seed=0)] == [1, 1, 1]
    assert [len(part) for part in split_train_val_test(numbered_examples(7), 0.3, seed=0)] == [3, 2, 2]


@pytest.mark.parametrize("size", [0, 0.5, -0.1, 1.0, float("nan")])
def test_split_rejects_bad_size(size: float) -> None:
    with pytest.raises(InputError, match="val_test_size"):
        split_train_val_test(numbered_examples(10), size, seed=0)


def test_split_rejects_too_few_examples() -> None:
    expect_error(lambda: split_train_val_test(numbered_examples(2), 0.1, seed=0), "data.csv", None, "too few examples")
    with pytest.raises(InputError, match="too few"):
        split_train_val_test([], 0.1, seed=0)


# ----------------------------------------------------------------------------- finding files


def make_files(folder: Path, *names: str) -> str:
    """Create empty files `names` in `folder`; the folder as a string."""
    folder.mkdir(exist_ok=True)
    for name in names:
        (folder / name).write_text("")
    return str(folder)


@pytest.mark.parametrize("val_name", ["val.csv", "dev.csv", "valid.csv"])
def test_find_three_splits(tmp_path: Path, val_name: str) -> None:
    folder = make_files(tmp_path / "d", "train.csv", val_name, "test.csv", "notes.txt")
    assert find_ner_files(folder) == {
        "train": os.path.join(folder, "train.csv"),
        "val": os.path.join(folder, val_name),
        "test": os.path.join(folder, "test.csv"),
    }


@pytest.mark.parametrize("name", ["train.csv", "data.csv"])
def test_find_single_file_to_split(tmp_path: Path, name: str) -> None:
    folder = make_files(tmp_path / "d", name)
    assert find_ner_files(folder) == {"data": os.path.join(folder, name)}


@pytest.mark.parametrize(
    "names, fragment",
    [
        ((), "found no .csv files"),
        (("train.csv", "val.csv"), "found 'train.csv', 'val.csv'"),
        (("test.csv",), "found 'test.csv'"),
        (("train.csv", "data.csv"), "found 'data.csv', 'train.csv'"),
        (("train.csv", "dev.csv", "val.csv", "test.csv"), "ambiguous"),
    ],
)
def test_find_reports_expected_and_found(tmp_path: Path, names: tuple, fragment: str) -> None:
    folder = make_files(tmp_path / "d", *names)
    message = expect_error(lambda: find_ner_files(folder), folder, None, fragment)
    if "ambiguous" not in fragment:
        assert "expected train.csv, val.csv" in message


def test_find_requires_a_directory(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing")
    expect_error(lambda: find_ner_files(missing), missing, None, "not a directory")


# ----------------------------------------------------------------------------- CoNLL and plain text


CONLL = (
    "-DOCSTART-\tX\tX\tO\n"
    "\n"
    "Lithium\t1\t0\tB\r\n"
    "carbonate\t-\t8\tI\r\n"
    "toxicity\t-\t18\tO\r\n"
    "\r\n"
    "\r\n"
    "New York  \t-\t0\tB-LOC\n"
    "-DOCSTART-\tX\tX\tO\n"
    "x\t-\t0\tO"
)


def test_read_conll_hand_made(tmp_path: Path) -> None:
    path = write(tmp_path, CONLL, "a.conll")
    assert read_conll(path, bare_tag_type="Chemical") == [
        NerExample(("Lithium", "carbonate", "toxicity"), ("B-Chemical", "I-Chemical", "O"), 3, path, "doc1"),
        NerExample(("New York",), ("B-LOC",), 8, path, "doc1"),
        NerExample(("x",), ("O",), 10, path, "doc2"),
    ]


def test_read_conll_space_separated_and_untagged(tmp_path: Path) -> None:
    path = write(tmp_path, "\ufeffa   B\nb I-ENT\n\nc O\n", "b.iob")
    assert [(e.tokens, e.tags, e.line) for e in read_conll(path)] == [
        (("a", "b"), ("B-ENT", "I-ENT"), 1),
        (("c",), ("O",), 4),
    ]
    path = write(tmp_path, "a\nb\n\nc\n", "c.conll")
    assert [(e.tokens, e.tags) for e in read_conll(path)] == [(("a", "b"), None), (("c",), None)]


def test_read_conll_errors(tmp_path: Path) -> None:
    path = write(tmp_path, "a\tO\n\nb\tB-\n", "bad.conll")
    expect_error(lambda: read_conll(path), path, 3, "invalid tag 'B-'")
    path = write(tmp_path, b"a\tO\nb\tO\n\n\xffc\tO\n", "bytes.conll")
    expect_error(lambda: read_conll(path), path, 4, "UTF-8")
    path = write(tmp_path, "a\tO\nb\n", "mixed.conll")
    expect_error(lambda: read_conll(path), path, 2, "no tag column")
    path = write(tmp_path, "a\tO\n\tO\n", "notoken.conll")
    expect_error(lambda: read_conll(path), path, 2, "empty token")
    path = write(tmp_path, "\r\n\n-DOCSTART-\tO\n", "empty.conll")
    expect_error(lambda: read_conll(path), path, None, "no sentences")
    with pytest.raises(InputError, match="entity type"):
        read_conll(path, bare_tag_type="two words")


def test_read_plain_text_and_words_file(tmp_path: Path) -> None:
    path = write(tmp_path, "Hello  world .\n\n  \r\nsecond\tline\r\n", "doc.txt")
    assert read_plain_text(path) == [
        NerExample(("Hello", "world", "."), None, 1, path),
        NerExample(("second", "line"), None, 4, path),
    ]
    expect_error(lambda: read_plain_text(write(tmp_path, "\n \n", "blank.txt")), str(tmp_path / "blank.txt"), None)
    assert read_words_file(path)[0].tokens == ("Hello", "world", ".")
    conll = write(tmp_path, "a\tB\n", "x.TSV")
    assert read_words_file(conll)[0].tags == ("B-ENT",)
    csv_path = write(tmp_path, "tokens\n\"['z']\"\n", "x.csv")
    assert read_words_file(csv_path)[0].tokens == ("z",)


def count_blocks(data: bytes) -> int:
    """The number of groups of consecutive non-blank lines."""
    blocks, inside = 0, False
    for line in data.split(b"\n"):
        blank = not line.strip()
        blocks += int(inside is False and not blank)
        inside = not blank
    return blocks


@needs_bc5cdr
def test_read_conll_bc5cdr_devel() -> None:
    data = BC5CDR_DEVEL.read_bytes()
    assert b"\r\n" in data
    examples = read_conll(str(BC5CDR_DEVEL), bare_tag_type="Chemical")
    assert len(examples) == count_blocks(data)
    token_lines = sum(1 for line in data.split(b"\n") if line.strip())
    assert sum(len(e.tokens) for e in examples) == token_lines
    tags = {tag for e in examples for tag in e.tags}
    assert tags == {"O", "B-Chemical", "I-Chemical"}
    assert not any("\r" in token for e in examples for token in e.tokens)
    assert examples[0].line == 1 and examples[1].line == len(examples[0].tokens) + 2


# ----------------------------------------------------------------------------- scripts/conll_to_csv.py


def run_convert(*arguments: str) -> subprocess.CompletedProcess:
    """Run the conversion script with `arguments`."""
    return subprocess.run(
        [sys.executable, str(CONVERT_SCRIPT), *arguments], capture_output=True, text=True, timeout=120, cwd=REPO
    )


@needs_bc5cdr
def test_convert_script_on_bc5cdr(tmp_path: Path) -> None:
    output = str(tmp_path / "devel.csv")
    result = run_convert(str(BC5CDR_DEVEL), output, "--bare-type", "Chemical")
    assert result.returncode == 0, result.stderr
    converted = read_ner_csv(output)
    original = read_conll(str(BC5CDR_DEVEL), bare_tag_type="Chemical")
    assert [(e.tokens, e.tags) for e in converted] == [(e.tokens, e.tags) for e in original]
    frame = pd.read_csv(output)
    assert len(frame) == len(original)

    refused = run_convert(str(BC5CDR_DEVEL), output)
    assert refused.returncode == 2
    assert refused.stderr.strip() == f"{output}: already exists; use --force to overwrite it"
    assert run_convert(str(BC5CDR_DEVEL), output, "--force").returncode == 0
    assert read_ner_csv(output)[0].tags[4] == "B-ENT"


def test_convert_script_reports_bad_input(tmp_path: Path) -> None:
    source = write(tmp_path, "a\tO\n\nb\tZ\n", "bad.conll")
    output = tmp_path / "out.csv"
    result = run_convert(source, str(output))
    assert result.returncode == 2
    assert result.stderr.strip() == f"{source}:3: invalid tag 'Z': expected O, B, I, B-TYPE or I-TYPE"
    assert not output.exists()
