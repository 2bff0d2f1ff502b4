"""python -m bert_tf.pretraining.create_pretraining_data: its records equal Google's create_pretraining_data.py's
(fixtures written by Google's script, see tests/fixtures/google_pretraining_data/README.md), its tokenizer gives
Google's tokens, Google's and NVIDIA's input_fn parse its records, and bad input is one line."""

from __future__ import annotations

import os
import shutil

import pytest

from conftest import ROOT

FIXTURES = ROOT / "tests" / "fixtures" / "google_pretraining_data"
MODULE = "bert_tf.pretraining.create_pretraining_data"


def google_commands():
    """The arguments of each command line in the fixtures' README.md that wrote Google's records."""
    import shlex

    text = (FIXTURES / "README.md").read_text(encoding="utf-8").replace("\\\n", " ")
    return [shlex.split(line)[2:] for line in text.splitlines() if line.strip().startswith("python create_")]


def config_of(args, **paths):
    """The config that our command line makes of Google's arguments (the same flag names), paths replaced."""
    from absl import flags

    from bert_tf import config
    from bert_tf.pretraining.config import PretrainingDataConfig

    values = flags.FlagValues()
    config.define_flags(PretrainingDataConfig, values, module_name=MODULE)
    values(["create_pretraining_data", *args])
    return config.from_flags(PretrainingDataConfig, values, **paths)


def read_records(path):
    """Every record of a TFRecord file as {feature: (kind, values)}."""
    import tensorflow as tf

    records = []
    for raw in tf.data.TFRecordDataset(str(path)):
        features = tf.train.Example.FromString(raw.numpy()).features.feature
        records.append({name: (f.WhichOneof("kind"), list(getattr(f, f.WhichOneof("kind")).value))
                        for name, f in features.items()})
    return records


def write(tmp_path, args, input_file=FIXTURES / "input.txt"):
    """Our command, in-process, with Google's arguments on the fixture input and vocabulary: (the config, Google's
    output files, ours)."""
    from bert_tf.pretraining.create_pretraining_data import run

    google = [FIXTURES / name for name in config_of(args).output_file.split(",")]
    ours = [str(tmp_path / f"ours{i}.tfrecord") for i in range(len(google))]
    cfg = config_of(args, input_file=str(input_file), vocab_file=str(FIXTURES / "vocab.txt"),
                    output_file=",".join(ours))
    run(cfg)
    return cfg, google, ours


@pytest.mark.parametrize("command", [0, 1], ids=["uncased-whole-word", "cased-two-shards"])
def test_records_equal_googles_feature_for_feature(tmp_path, command):
    """Google's command lines of the fixtures, run by our command: the same records, feature for feature."""
    cfg, google, ours = write(tmp_path, google_commands()[command])
    assert cfg.do_whole_word_mask == (command == 0) and cfg.do_lower_case == (command == 0)
    for expected, actual in zip(google, ours):
        want, got = read_records(expected), read_records(actual)
        assert len(got) == len(want) > 5
        for index, (w, g) in enumerate(zip(want, got)):
            assert g == w, (expected, index)


# Google's FullTokenizer (tokenization.py at eedf571) on these texts with the fixture vocabulary, uncased.
GOOGLE_UNCASED = {
    "Café naïve résumé: ΟΔΟΣ and 北京大学 studied.":
        ["cafe", "naive", "resume", ":", "οδος", "and", "北", "京", "大", "学", "studied", "."],
    "Unaffable runners\u200bjumped\x07 over\u00a0the\u3000fence!":
        ["un", "##aff", "##able", "run", "##n", "##ers", "##j", "##u", "##m", "##p", "##ed", "over", "the", "fence",
         "!"],
    "Alice,Bob;Paris--Rome (Oslo) «one» — two… 12,345.6":
        ["alice", ",", "bob", "[UNK]", "paris", "-", "-", "rome", "[UNK]", "oslo", "[UNK]", "[UNK]", "one", "[UNK]",
         "[UNK]", "t", "##w", "##o", "[UNK]", "1", "##2", ",", "3", "##4", "##5", ".", "6"],
    "ＡＬＩＣＥ ﬁ e\u0301 \u0301 \ufeffbob \ufffdcarol\x00dave":
        ["[UNK]", "[UNK]", "e", "bob", "carol", "##d", "##a", "##v", "##e"],
    "İstanbul straße ΣΟΦΙΑΣ σοφιας": ["i", "##s", "##t", "##a", "##n", "##b", "##u", "##l", "[UNK]", "[UNK]", "[UNK]"],
    "a" * 150 + " " + "b" * 250: ["a"] + ["##a"] * 149 + ["[UNK]"],
    "line\u2028sep next\x85line tab\there":
        ["l", "##i", "##n", "##e", "s", "##e", "##p", "n", "##e", "##x", "##t", "##l", "##i", "##n", "##e", "t", "##a",
         "##b", "here"],
    "𠀀𪜀 emoji 😀 ㄱ 가": ["[UNK]", "[UNK]", "e", "##m", "##o", "##j", "##i", "[UNK]", "[UNK]", "[UNK]"],
}


def test_tokens_are_googles_where_the_rust_tokenizer_differs():
    """Accents, CJK, control and format characters, odd spaces and punctuation as Google's BasicTokenizer; the
    Rust tokenizer of bert_tf.tokenization agrees except on the Greek final sigma (Python's str.lower keeps ς) and
    on words of 101 to 200 characters (Hugging Face's limit is 100, Google's 200)."""
    from bert_tf.pretraining.google_tokenizer import FullTokenizer
    from bert_tf.tokenization import WordPieceTokenizer

    ours = FullTokenizer(str(FIXTURES / "vocab.txt"), do_lower_case=True)
    rust = WordPieceTokenizer.from_vocab(str(FIXTURES / "vocab.txt"), lowercase=True)
    differ = []
    for text, expected in GOOGLE_UNCASED.items():
        assert ours.tokenize(text) == expected, text
        if [rust.tokenizer.id_to_token(i) for i in rust.encode_texts([text])[0]] != expected:
            differ.append(text[:4])
    assert differ == ["Café", "aaaa"]
    cased = FullTokenizer(str(FIXTURES / "vocab.txt"), do_lower_case=False)
    assert cased.tokenize("Café naïve résumé: ΟΔΟΣ and 北京大学") == ["[UNK]", "[UNK]", "[UNK]", ":", "[UNK]", "and", "北",
                                                                    "京", "大", "学"]


def test_googles_and_nvidias_input_fn_parse_the_records(tmp_path):
    """run_pretraining.py's name_to_features (Google's and NVIDIA's are the same) parses every record, and our
    TFRecord reader reads them with next-sentence labels."""
    import tensorflow as tf

    from bert_tf.pretraining import tfrecords

    cfg, google, (path,) = write(tmp_path, google_commands()[0])
    seq, pred = cfg.max_seq_length, cfg.max_predictions_per_seq
    name_to_features = {  # transcribed from run_pretraining.py's input_fn_builder
        "input_ids": tf.io.FixedLenFeature([seq], tf.int64),
        "input_mask": tf.io.FixedLenFeature([seq], tf.int64),
        "segment_ids": tf.io.FixedLenFeature([seq], tf.int64),
        "masked_lm_positions": tf.io.FixedLenFeature([pred], tf.int64),
        "masked_lm_ids": tf.io.FixedLenFeature([pred], tf.int64),
        "masked_lm_weights": tf.io.FixedLenFeature([pred], tf.float32),
        "next_sentence_labels": tf.io.FixedLenFeature([1], tf.int64),
    }
    parsed = [tf.io.parse_single_example(r, name_to_features) for r in tf.data.TFRecordDataset(path)]
    assert len(parsed) == len(read_records(google[0]))
    labels = {int(p["next_sentence_labels"][0]) for p in parsed}
    assert labels == {0, 1}
    for p in parsed:
        real = int(p["input_mask"].numpy().sum())
        weights = p["masked_lm_weights"].numpy()
        assert set(weights.tolist()) <= {0.0, 1.0} and 1 <= weights.sum() <= pred
        assert p["masked_lm_positions"].numpy()[: int(weights.sum())].max() < real
    data = tfrecords.TFRecordData([path], seq, pred, 4, seed=0)
    assert data.has_next_sentence_labels


def test_one_output_per_input_file_each_as_that_file_alone(tmp_path):
    """--output_dir: every input file gives its own records (here in two shards each), equal to a run on that file
    alone; --output_file with several input files is refused."""
    from bert_tf.errors import InputError
    from bert_tf.pretraining.create_pretraining_data import run

    texts = tmp_path / "texts"
    texts.mkdir()
    shutil.copy(FIXTURES / "input.txt", texts / "a.txt")
    (texts / "b.txt").write_text("Alice met Bob.\nThey talked.\n\nCarol visited Rome.\nDave went to Lima.\n")
    args = [a for a in google_commands()[1] if not a.startswith("--output_file")]
    run(config_of(args, input_file=str(texts), output_dir=str(tmp_path / "out"), output_shards=2,
                  vocab_file=str(FIXTURES / "vocab.txt")))
    assert sorted(os.listdir(tmp_path / "out")) == [f"{n}-0000{i}-of-00002.tfrecord" for n in "ab" for i in (0, 1)]
    for i in (0, 1):
        assert read_records(tmp_path / "out" / f"a-0000{i}-of-00002.tfrecord") == read_records(
            FIXTURES / f"google_cased_{i}.tfrecord")
    alone = tmp_path / "b.tfrecord"
    run(config_of(args, input_file=str(texts / "b.txt"), output_file=str(alone), vocab_file=str(FIXTURES / "vocab.txt")))
    both = [r for i in (0, 1) for r in read_records(tmp_path / "out" / f"b-0000{i}-of-00002.tfrecord")]
    assert sorted(map(repr, both)) == sorted(map(repr, read_records(alone))) and both
    with pytest.raises(InputError, match="names 2 files: give --output_dir"):
        run(config_of(args, input_file=str(texts), output_file=str(tmp_path / "x.tfrecord"),
                      vocab_file=str(FIXTURES / "vocab.txt")))


def test_bad_input_is_one_line_exit_2_and_nothing_written(tmp_path, capsys):
    """A file that is not UTF-8 (named with its line), checked before any file is written; a missing flag."""
    from bert_tf import cli
    from bert_tf.pretraining.create_pretraining_data import run

    good, bad = tmp_path / "a.txt", tmp_path / "b.txt"
    good.write_text("Alice met Bob.\nThey talked.\n")
    bad.write_bytes(b"Carol visited Rome.\n\nDave went \xff to Lima.\n")
    cfg = config_of([f"--input_file={good},{bad}", f"--output_dir={tmp_path / 'out'}",
                     f"--vocab_file={FIXTURES / 'vocab.txt'}"])
    assert cli.error_exit_status(lambda: run(cfg), MODULE) == 2
    assert capsys.readouterr().err.splitlines() == [f"error: {bad}:3: not valid UTF-8 (byte 0xff)"]
    assert not (tmp_path / "out").exists()
    assert cli.error_exit_status(lambda: run(config_of([f"--input_file={good}", "--output_file=x"])), MODULE) == 2
    assert capsys.readouterr().err.splitlines() == ["error: --vocab_file is required"]
