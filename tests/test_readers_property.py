"""Property tests: on any input the readers return valid examples or raise InputError naming the file,
and every line-based reader splits lines as the one line reader (bert_tf.io_utils) does: as Python's
universal newlines do, a leading byte order mark dropped."""

from __future__ import annotations

import io
import os
from dataclasses import replace
import tempfile
from pathlib import Path
from typing import Callable, Iterator, List, Optional, Tuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bert_tf.classifier.data import ConsensusExample, TsvLineChunks, iter_consensus_tsv, write_consensus_tsv
from bert_tf.io_utils import iter_lines, raw_line_chunks, read_text
from bert_tf.ner.data import (
    NerExample,
    read_conll,
    read_ner_csv,
    read_plain_text,
    validate_tag,
    write_ner_csv,
)
from bert_tf.errors import InputError

EXAMPLES_PER_PROPERTY = 300
PROPERTY_SETTINGS = settings(
    max_examples=EXAMPLES_PER_PROPERTY,
    deadline=None,
    database=None,  # keep no .hypothesis folder in the project
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)

VALID_NER_CSV = (
    ",tokens,tags\n"
    "0,\"['Sauli', 'Niinistö', 'vieraili', 'Oulussa']\",\"['B-PERSON', 'I-PERSON', 'O', 'B-GPE']\"\n"
    "1,\"['It', \"\"'s\"\", 'a, b']\",\"['O', 'O', 'B-X']\"\n"
    "2,\"['New York', '']\",\"['B-LOC', 'I-LOC']\"\n"
).encode("utf-8")
VALID_CONSENSUS_TSV = (
    "101\tT1\tche\tDOCSTART Aspirin and \taspirin\t reduced pain. DOCEND\r\n"
    "102\tT7\tdis\tThe  patient had \tfever\t, then  \r\n"
    "\r\n"
    "103\tT9\tout\t\tcell\t lines\n"
).encode("utf-8")
VALID_CONLL = (
    "-DOCSTART-\tX\tX\tO\n\nLithium\t1\t0\tB\r\ncarbonate\t-\t8\tI\r\ntoxicity\t-\t18\tO\r\n\r\n"
    "New\t-\t0\tB-LOC\nYork\t-\t4\tI-LOC\n"
).encode("utf-8")
SEEDS = {"ner_csv": VALID_NER_CSV, "consensus_tsv": VALID_CONSENSUS_TSV, "conll": VALID_CONLL}

INTERESTING = [b"\t", b"'", b'"', b"[", b"]", b"(", b")", b",", b"\x00", b"\r", b"\n", b"\r\n", b" ", b"\\",
               b"\xff", b"\xc3", b"\xef\xbb\xbf", b"B-", b"I", b"O", b"-DOCSTART-", "é".encode(), b"[[[[",
               b"'''", b"\"\"\"", b"1e999", b"\\x", b"None", b"\xe2\x80\xa8"]
MUTATION_KINDS = ["delete", "insert", "replace", "duplicate_line", "drop_line", "swap_lines", "truncate"]

Mutation = Tuple[str, int, int, bytes]
mutations = st.tuples(
    st.sampled_from(MUTATION_KINDS), st.integers(0, 10**6), st.integers(1, 12), st.sampled_from(INTERESTING)
)
TEXT_ALPHABET = list("abO-BI[](){}'\",\t\n\r \\xé\u2028\x00\x0b\x1c:") + ["\ufeff"]
texts = st.text(alphabet=st.sampled_from(TEXT_ALPHABET), max_size=400)


@pytest.fixture(scope="module")
def work_dir() -> Iterator[str]:
    """A folder for the files the properties write (one file a property, rewritten per example)."""
    with tempfile.TemporaryDirectory() as folder:
        yield folder


# ----------------------------------------------------------------------------- mutations


def apply_mutation(data: bytes, mutation: Mutation) -> bytes:
    """`data` changed by one byte- or line-level mutation."""
    kind, position, length, payload = mutation
    at = position % (len(data) + 1)
    if kind == "delete":
        return data[:at] + data[at + length:]
    if kind == "insert":
        return data[:at] + payload + data[at:]
    if kind == "replace":
        return data[:at] + payload + data[at + len(payload):]
    if kind == "truncate":
        return data[:at]
    return mutate_lines(data.split(b"\n"), kind, position, length)


def mutate_lines(lines: List[bytes], kind: str, position: int, length: int) -> bytes:
    """Lines duplicated, dropped or swapped, joined again."""
    first = position % len(lines)
    second = (position + length) % len(lines)
    if kind == "duplicate_line":
        lines.insert(first, lines[first])
    elif kind == "drop_line":
        del lines[first]
    else:
        lines[first], lines[second] = lines[second], lines[first]
    return b"\n".join(lines)


def mutated(seed: bytes, changes: List[Mutation]) -> bytes:
    """`seed` after every mutation of `changes`, in order."""
    for change in changes:
        seed = apply_mutation(seed, change)
    return seed


# ----------------------------------------------------------------------------- invariants


def outcome(read: Callable[[str], list], path: str) -> Optional[list]:
    """What `read` returns for `path`, or None after checking that it raised a proper InputError."""
    try:
        return read(path)
    except InputError as error:
        message = str(error)
        assert message.startswith(path + ":"), message
        assert "\n" not in message
        assert error.line is None or error.line >= 1
        return None


def check_ner_examples(examples: List[NerExample], tags_required: bool) -> None:
    """Every example has tokens, one valid tag a token when tagged, and increasing lines."""
    assert examples
    for example in examples:
        assert example.tokens and all(isinstance(token, str) for token in example.tokens)
        assert example.line >= 1
        if tags_required:
            assert example.tags is not None
        if example.tags is not None:
            assert len(example.tags) == len(example.tokens)
            assert all(validate_tag(tag) for tag in example.tags)
    lines = [example.line for example in examples]
    assert lines == sorted(set(lines))


def check_conll_examples(examples: List[NerExample]) -> None:
    """CoNLL sentences: non-empty tokens without surrounding whitespace, valid tags."""
    check_ner_examples(examples, tags_required=False)
    for example in examples:
        assert all(token and token == token.strip() for token in example.tokens)


def check_consensus_examples(examples: List[ConsensusExample], path: str) -> None:
    """Six string fields without tabs or line breaks, a label, one example a non-blank line."""
    for example in examples:
        fields = (example.doc_id, example.annotation_id, example.label, example.left, example.mention, example.right)
        assert all(isinstance(field, str) and not set(field) & set("\t\n\r") for field in fields)
        assert example.label
    assert [example.line for example in examples] == [number for number, _ in iter_lines(path, skip_blank=True)]


def check_chunked_consensus(path: str, labels: List[str]) -> None:
    """The chunked reader (parsing where it featurizes) gives the streaming reader's columns or error."""
    def streamed(p: str) -> list:
        return [(e.label, e.left, e.mention, e.right) for e in iter_consensus_tsv(p, labels=labels)]

    def chunked(p: str) -> list:
        source = TsvLineChunks(p, labels=labels)
        return [row for chunk in source.chunks(2) for row in zip(*source.columns(chunk))]

    def error_of(read: Callable[[str], list]) -> Optional[str]:
        try:
            read(path)
        except InputError as error:
            return str(error)
        return None

    assert error_of(chunked) == error_of(streamed)
    if error_of(streamed) is None:
        assert chunked(path) == streamed(path)


def universal_lines(data: bytes) -> Optional[List[str]]:
    """The lines Python's text mode reads from `data` (UTF-8, universal newlines, a leading BOM dropped),
    without terminators; None when `data` is not UTF-8."""
    try:
        # strict first: utf-8-sig's incremental decoder reads a lone b"\xef" (a cut-off BOM) as no text at all
        (data[3:] if data.startswith(b"\xef\xbb\xbf") else data).decode("utf-8")
        text = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8-sig", newline=None)
        return [line[:-1] if line.endswith("\n") else line for line in text]
    except UnicodeDecodeError:
        return None


def error_line(read: Callable[[], object]) -> Optional[int]:
    """The line of the InputError `read` raises, or None when it raises none."""
    try:
        read()
    except InputError as error:
        return error.line
    return None


def check_line_reader(path: str, data: bytes) -> None:
    """The one line reader gives Python's universal-newline lines, numbered from 1, or an error naming the
    line of the first bad byte, as whole-file reading and the chunked raw lines do."""
    expected = universal_lines(data)
    lines = outcome(lambda p: list(iter_lines(p)), path)
    assert lines == (None if expected is None else list(enumerate(expected, start=1)))
    chunked = [(first + i, raw) for first, raws in raw_line_chunks(path, 3) for i, raw in enumerate(raws)]
    if expected is None:
        assert error_line(lambda: read_text(path)) == error_line(lambda: list(iter_lines(path))) >= 1
    else:
        assert [(n, raw.decode("utf-8")) for n, raw in chunked] == lines
        # a BOM in front, so that utf-8-sig drops that one and not a U+FEFF the text itself starts with
        assert universal_lines(b"\xef\xbb\xbf" + read_text(path).encode("utf-8")) == expected
        nonblank = [(n, text) for n, text in lines if text.strip()]
        assert list(iter_lines(path, skip_blank=True)) == nonblank


def check_every_reader(work_dir: str, data: bytes) -> None:
    """Write `data` and run every reader on it, checking the invariants of what they return."""
    path = os.path.join(work_dir, "input.txt")
    Path(path).write_bytes(data)
    check_line_reader(path, data)
    for tags_required in (True, False):
        examples = outcome(lambda p: read_ner_csv(p, require_tags=tags_required), path)
        if examples is not None:
            check_ner_examples(examples, tags_required)
    consensus = outcome(lambda p: list(iter_consensus_tsv(p, labels=["che", "dis", "out"])), path)
    if consensus is not None:
        check_consensus_examples(consensus, path)
    unchecked = outcome(lambda p: list(iter_consensus_tsv(p)), path)
    if unchecked is not None:
        check_consensus_examples(unchecked, path)
    check_chunked_consensus(path, ["che", "dis", "out"])
    conll = outcome(lambda p: read_conll(p, bare_tag_type="Chemical"), path)
    if conll is not None:
        check_conll_examples(conll)
    plain = outcome(read_plain_text, path)
    if plain is not None:
        assert all(example.tokens for example in plain)


# ----------------------------------------------------------------------------- properties


@PROPERTY_SETTINGS
@given(data=st.binary(max_size=600))
def test_arbitrary_bytes(work_dir: str, data: bytes) -> None:
    check_every_reader(work_dir, data)


@PROPERTY_SETTINGS
@given(text=texts)
def test_arbitrary_text_from_tricky_characters(work_dir: str, text: str) -> None:
    check_every_reader(work_dir, text.encode("utf-8"))


@pytest.mark.parametrize("seed", sorted(SEEDS))
@PROPERTY_SETTINGS
@given(changes=st.lists(mutations, min_size=1, max_size=6))
def test_mutated_valid_files(work_dir: str, seed: str, changes: List[Mutation]) -> None:
    check_every_reader(work_dir, mutated(SEEDS[seed], changes))


def test_seeds_are_valid(work_dir: str) -> None:
    path = os.path.join(work_dir, "seed.txt")
    for name, reader, count in [("ner_csv", read_ner_csv, 3), ("conll", read_conll, 2)]:
        Path(path).write_bytes(SEEDS[name])
        assert len(reader(path)) == count
    Path(path).write_bytes(SEEDS["consensus_tsv"])
    assert len(list(iter_consensus_tsv(path, labels=["che", "dis", "out"]))) == 3


# ----------------------------------------------------------------------------- round trips

token_text = st.text(st.characters(blacklist_categories=["Cs"]), max_size=8)
entity_tags = st.sampled_from(["O", "B-X", "I-X", "B-GENE-PRODUCT", "I-é"])


@st.composite
def ner_examples(draw: st.DrawFn) -> NerExample:
    """A tagged example with arbitrary (non-surrogate) token text."""
    tokens = draw(st.lists(token_text, min_size=1, max_size=6))
    tags = draw(st.lists(entity_tags, min_size=len(tokens), max_size=len(tokens)))
    return NerExample(tuple(tokens), tuple(tags), 0)


@settings(max_examples=150, deadline=None, database=None)
@given(examples=st.lists(ner_examples(), min_size=1, max_size=5))
def test_ner_csv_round_trip(work_dir: str, examples: List[NerExample]) -> None:
    path = os.path.join(work_dir, "round_trip.csv")
    write_ner_csv(path, examples)
    assert [(e.tokens, e.tags) for e in read_ner_csv(path)] == [(e.tokens, e.tags) for e in examples]


field_text = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\t\n\r\ufeff"), max_size=12)


@st.composite
def consensus_examples(draw: st.DrawFn) -> ConsensusExample:
    """An example whose fields hold anything but tabs and line breaks."""
    mention = draw(field_text.filter(lambda text: text.strip()))
    label = draw(st.sampled_from(["che", "dis", "out"]))
    doc_id, annotation_id, left, right = (draw(field_text) for _ in range(4))
    return ConsensusExample(doc_id, annotation_id, label, left, mention, right, 0)


@settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(examples=st.lists(consensus_examples(), max_size=5))
def test_consensus_tsv_round_trip(work_dir: str, examples: List[ConsensusExample]) -> None:
    path = os.path.join(work_dir, "round_trip.tsv")
    write_consensus_tsv(path, examples)
    back = list(iter_consensus_tsv(path, labels=["che", "dis", "out"]))
    assert [replace(e, line=0) for e in back] == examples
    assert [e.line for e in back] == list(range(1, len(examples) + 1))
