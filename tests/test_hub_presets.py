"""A keras-hub preset directory (the `save_to_preset` layout every `kaggle://` preset has: config.json,
model.weights.h5, metadata.json, tokenizer.json, assets/tokenizer/vocabulary.txt) as --bert_model: the backbone
through keras-hub's own loader, the tokenizer from the preset's vocabulary (issue 24)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import TINY_WORDS

from bert_tf import checkpoints, hub
from bert_tf.errors import InputError
from bert_tf.tokenization import WordPieceTokenizer

INPUTS = {"token_ids": np.array([[2, 10, 11, 12, 3, 0]], np.int32),
          "padding_mask": np.array([[1, 1, 1, 1, 1, 0]], np.int32),
          "segment_ids": np.zeros([1, 6], np.int32)}


@pytest.fixture()
def tiny_bert(tmp_path) -> str:
    """A tiny random BERT whose vocabulary keras-hub accepts (no token twice)."""
    from checkpoint_factory import make_random_hf_checkpoint

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *sorted(set(TINY_WORDS)), "##corp",
             *[chr(c) for c in range(ord("a"), ord("z") + 1) if chr(c) not in TINY_WORDS]]
    return make_random_hf_checkpoint(str(tmp_path / "hf"), vocab, hidden=32, layers=2, heads=2, intermediate=64,
                                     max_positions=64, seed=2)


@pytest.fixture()
def preset(tmp_path, tiny_bert):
    """The tiny BERT saved by keras-hub as a preset: its BertBackbone and a BertTokenizer (lowercase)."""
    import keras_hub

    folder = tmp_path / "preset"
    checkpoints.load_backbone(checkpoints.find_checkpoint(tiny_bert)).save_to_preset(str(folder))
    keras_hub.models.BertTokenizer(vocabulary=f"{tiny_bert}/vocab.txt", lowercase=True).save_to_preset(str(folder))
    return folder


def test_preset_directory_loads_through_keras_hubs_loader(preset, tiny_bert, monkeypatch):
    import keras_hub

    loaded = []
    from_preset = keras_hub.models.BertBackbone.from_preset
    monkeypatch.setattr(keras_hub.models.BertBackbone, "from_preset",
                        lambda path, **kwargs: loaded.append(path) or from_preset(path, **kwargs))
    checkpoint, tokenizer = checkpoints.load_pretrained(str(preset))
    assert checkpoint.kind == "keras_hub" and checkpoint.hub is None
    reference = WordPieceTokenizer.from_model_dir(tiny_bert)
    words = ["Alice", "visited", "Oslo", "and", "Acmecorp", "."]
    assert tokenizer.encode_words(words) == reference.encode_words(words)  # lower-cased as the preset says
    got = checkpoints.load_backbone(checkpoint)(INPUTS)
    assert loaded == [str(preset)]
    want = checkpoints.load_backbone(checkpoints.find_checkpoint(tiny_bert))(INPUTS)
    np.testing.assert_allclose(got["sequence_output"], want["sequence_output"], atol=1e-6)
    assert hub.resolve_preset(str(preset)) == str(preset)  # keras-hub's file lookup, as for kaggle:// handles


def test_preset_with_another_tokenizer_is_one_line(preset):
    config_path = preset / "tokenizer.json"
    config = json.loads(config_path.read_text())
    config_path.write_text(json.dumps({**config, "class_name": "GemmaTokenizer"}))
    with pytest.raises(InputError) as caught:
        checkpoints.load_pretrained(str(preset))
    assert caught.value.problem == ("a keras-hub GemmaTokenizer preset: only BertTokenizer (WordPiece) presets are "
                                    "supported") and caught.value.path == str(config_path)
