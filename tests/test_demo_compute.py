"""bench/demo_compute.py: the NER demo's training compute (steps x padded tokens) against its earlier setting
(issue 24: at most a third), and the flags that change it (--max_train_examples, bucketing)."""

from __future__ import annotations

import sys

from conftest import ROOT

sys.path.insert(0, str(ROOT / "bench"))
import demo_compute  # noqa: E402

# flags/demo_ner.flags before issue 24 (commit d0ee61a): 5 epochs at batch 16 over the 600 training sentences.
EARLIER_NER = {"data_path": "data/demo/ner", "max_len": "128", "batch_size": "16", "epochs": "5"}


def test_ner_demo_trains_on_at_most_a_third_of_its_earlier_compute(minilm):
    earlier = demo_compute.ner_compute(EARLIER_NER, minilm)
    assert earlier == {"steps": 235, "tokens": 186_040}
    now = demo_compute.ner_compute(demo_compute.read_flagfile(str(ROOT / "flags" / "demo_ner.flags")), minilm)
    assert now["tokens"] * 3 <= earlier["tokens"]


def test_ner_compute_follows_max_train_examples_and_bucketing(minilm, tmp_path):
    one_epoch = {**EARLIER_NER, "epochs": "1", "batch_size": "1"}
    whole = demo_compute.ner_compute(one_epoch, minilm)
    first = demo_compute.ner_compute({**one_epoch, "max_train_examples": "100"}, minilm)
    assert whole == {"steps": 697, "tokens": 37_208}  # 600 sentences in 697 windows
    assert 100 <= first["steps"] < 200 and first["tokens"] < whole["tokens"] / 4
    flagfile = tmp_path / "x.flags"
    flagfile.write_text("# a comment\n--max_len=128\n--batch_size=1\n--epochs=1\n--nobucket_by_length\n"
                        "--data_path=data/demo/ner\n--overwrite_output_dir\n")
    flags = demo_compute.read_flagfile(str(flagfile))
    assert flags["bucket_by_length"] == "false" and flags["overwrite_output_dir"] == "true"
    assert demo_compute.ner_compute(flags, minilm) == {"steps": 697, "tokens": 697 * 128}  # every row padded to 128
    assert demo_compute.ner_compute({**flags, "bucket_by_length": "true", "bucket_lengths": "64"},
                                    minilm)["tokens"] < 697 * 128  # rows up to 64 padded to 64
