"""Tests for bert_tf.checkpoints: every checkpoint format, the activation each one means, clear errors."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Callable, Dict

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

import checkpoint_factory
from bert_tf import checkpoints
from bert_tf.errors import InputError

REFERENCE = Path(__file__).resolve().parent / "fixtures" / "minilm_reference.npz"
TINY_INPUTS = {
    "token_ids": np.array([[2, 10, 11, 12, 3, 0, 0], [2, 20, 21, 3, 30, 31, 3]], np.int32),
    "padding_mask": np.array([[1, 1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1, 1]], np.int32),
    "segment_ids": np.array([[0, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 1, 1, 1]], np.int32),
}
# Extra variables of real Google/NVIDIA checkpoints that must be skipped without a word.
TF1_EXTRAS = {
    "global_step": np.array(1000, np.int64),
    "bert/pooler/dense/kernel/adam_m": None,
    "bert/pooler/dense/kernel/adam_v": None,
    "cls/predictions/output_bias": np.zeros(7, np.float32),
    "cls/seq_relationship/output_weights": np.zeros((2, 7), np.float32),
}


def outputs(backbone, inputs: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """sequence_output and pooled_output of a backbone in inference mode."""
    result = backbone(inputs, training=False)
    return {k: np.asarray(v) for k, v in result.items()}


def hf_state(directory: str) -> Dict[str, np.ndarray]:
    """The tensors of a Hugging Face directory's model.safetensors."""
    return load_file(os.path.join(directory, "model.safetensors"))


def copy_hf(source: str, target: Path, edit: Callable[[Dict[str, np.ndarray]], Dict[str, np.ndarray]]) -> str:
    """Copy a Hugging Face directory, rewriting its weights with `edit`."""
    shutil.copytree(source, target)
    save_file(edit(hf_state(source)), str(target / "model.safetensors"))
    return str(target)


def write_google_dir(directory: Path, hf_dir: str, extras: Dict[str, np.ndarray] = TF1_EXTRAS,
                     edit: Callable[[Dict[str, np.ndarray]], Dict[str, np.ndarray]] = lambda t: t) -> Path:
    """A Google-style TF1 directory (bert_config.json, vocab.txt, bert_model.ckpt.*) with hf_dir's weights."""
    directory.mkdir(parents=True, exist_ok=True)
    state = {checkpoints.names.hf_canonical_name(k): v for k, v in hf_state(hf_dir).items() if "position_ids" not in k}
    tensors = checkpoint_factory.tf1_tensors(state)
    for name, value in extras.items():
        tensors[name] = np.zeros_like(tensors["bert/pooler/dense/kernel"]) if value is None else value
    checkpoint_factory.write_tf1_checkpoint(str(directory / "bert_model.ckpt"), edit(tensors))
    shutil.copy(os.path.join(hf_dir, "vocab.txt"), directory / "vocab.txt")
    shutil.copy(os.path.join(hf_dir, "config.json"), directory / "bert_config.json")
    return directory


# --- names ---------------------------------------------------------------------------------------------------


def test_canonical_names_follow_google_and_hugging_face_conventions():
    assert checkpoints.names.tf1_name("embeddings.word_embeddings.weight") == "bert/embeddings/word_embeddings"
    assert checkpoints.names.tf1_name("embeddings.LayerNorm.bias") == "bert/embeddings/LayerNorm/beta"
    assert (checkpoints.names.tf1_name("encoder.layer.11.attention.output.LayerNorm.weight")
            == "bert/encoder/layer_11/attention/output/LayerNorm/gamma")
    assert (checkpoints.names.tf1_name("encoder.layer.0.intermediate.dense.weight")
            == "bert/encoder/layer_0/intermediate/dense/kernel")
    assert checkpoints.names.tf1_name("pooler.dense.bias") == "bert/pooler/dense/bias"
    assert checkpoints.names.hf_canonical_name("bert.embeddings.LayerNorm.gamma") == "embeddings.LayerNorm.weight"
    assert (checkpoints.names.hf_canonical_name("encoder.layer.2.output.LayerNorm.beta")
            == "encoder.layer.2.output.LayerNorm.bias")
    assert checkpoints.huggingface.h5_canonical_name(
        "bert/tf_bert_for_token_classification/bert/encoder/layer_._3/attention/self/query/kernel:0"
    ) == ("encoder.layer.3.attention.self.query.weight", True)
    assert checkpoints.huggingface.h5_canonical_name("bert/tf_bert_model/bert/embeddings/position_embeddings/embeddings:0") == (
        "embeddings.position_embeddings.weight", False)
    assert checkpoints.huggingface.h5_canonical_name("classifier/tf_bert_for_token_classification/classifier/bias:0") == (
        "classifier.bias", False)


# --- the real MiniLM against transformers' PyTorch outputs -------------------------------------------------


@pytest.fixture(scope="module")
def reference() -> Dict[str, np.ndarray]:
    """transformers' BertModel outputs for all-MiniLM-L6-v2 (scripts/make_reference_outputs.py)."""
    if not REFERENCE.is_file():
        pytest.skip(f"{REFERENCE} missing: run scripts/make_reference_outputs.py where torch is installed")
    with np.load(REFERENCE) as data:
        return {k: data[k] for k in data.files}


@pytest.fixture(scope="module")
def minilm_backbone(minilm):
    """all-MiniLM-L6-v2 loaded from its Hugging Face directory."""
    return checkpoints.load_backbone(checkpoints.find_checkpoint(minilm))


def reference_inputs(reference: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """The reference batch as backbone inputs."""
    return {"token_ids": reference["input_ids"], "padding_mask": reference["attention_mask"],
            "segment_ids": reference["token_type_ids"]}


def max_diff_on_tokens(backbone, reference: Dict[str, np.ndarray]) -> float:
    """Largest |ours - transformers| over the real (non-padding) positions."""
    ours = outputs(backbone, reference_inputs(reference))["sequence_output"]
    mask = reference["attention_mask"].astype(bool)
    return float(np.abs(ours - reference["last_hidden_state"])[mask].max())


def test_minilm_matches_transformers_with_exact_gelu(minilm, minilm_backbone, reference):
    assert checkpoints.find_checkpoint(minilm).activation == "gelu_exact"  # config.json says hidden_act "gelu"
    assert reference["attention_mask"].min() == 0 and reference["token_type_ids"].max() == 1  # padding, a pair
    assert max_diff_on_tokens(minilm_backbone, reference) < 1e-4


def test_tanh_gelu_would_not_match_transformers(minilm_backbone, reference):
    checkpoints.set_feedforward_activation(minilm_backbone, "gelu_tanh")
    try:
        assert max_diff_on_tokens(minilm_backbone, reference) > 1e-3
    finally:
        checkpoints.set_feedforward_activation(minilm_backbone, "gelu_exact")


def test_minilm_tokenizer_gives_the_reference_ids(minilm, reference):
    from bert_tf.tokenization import WordPieceTokenizer

    tokenizer = WordPieceTokenizer.from_model_dir(minilm)
    for row, (text, pair) in enumerate(zip(reference["texts"], reference["text_pairs"])):
        ids = [tokenizer.cls_id] + tokenizer.encode_texts([str(text)])[0] + [tokenizer.sep_id]
        if str(pair):
            ids += tokenizer.encode_texts([str(pair)])[0] + [tokenizer.sep_id]
        assert ids == reference["input_ids"][row][: len(ids)].tolist()
        assert reference["attention_mask"][row].sum() == len(ids)


def test_tf1_checkpoint_of_minilm_loads_like_hugging_face(tmp_path, minilm, minilm_backbone, reference, capsys):
    import tensorflow as tf

    directory = write_google_dir(tmp_path / "google", minilm)
    shapes = dict(tf.train.list_variables(str(directory / "bert_model.ckpt")))
    assert shapes["bert/encoder/layer_5/intermediate/dense/kernel"] == [384, 1536]  # Google's [in, out]
    assert shapes["bert/embeddings/word_embeddings"] == [30522, 384]

    checkpoint = checkpoints.find_checkpoint(str(directory))
    assert (checkpoint.kind, checkpoint.activation) == ("tf1", "gelu_tanh")  # TF1 "gelu" is the tanh form
    backbone = checkpoints.load_backbone(checkpoint)
    assert "ignored" not in capsys.readouterr().err  # optimizer slots, global_step, cls/ skipped silently
    tf1_out = outputs(backbone, reference_inputs(reference))["sequence_output"]
    assert max_diff_on_tokens(backbone, reference) > 1e-3

    checkpoints.set_feedforward_activation(minilm_backbone, "gelu_tanh")
    try:
        hf_out = outputs(minilm_backbone, reference_inputs(reference))["sequence_output"]
    finally:
        checkpoints.set_feedforward_activation(minilm_backbone, "gelu_exact")
    assert np.abs(tf1_out - hf_out).max() < 1e-6
    checkpoints.set_feedforward_activation(backbone, "gelu_exact")
    assert max_diff_on_tokens(backbone, reference) < 1e-4


# --- Hugging Face layouts (tiny random model) --------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_outputs(tiny_checkpoint) -> Dict[str, np.ndarray]:
    """Outputs of the tiny checkpoint's plain model.safetensors by the numpy reference (tests/reference_bert.py,
    no bert_tf code), in float32 as the model computes them."""
    from reference_bert import ReferenceBert

    reference = ReferenceBert.load(tiny_checkpoint)
    hidden = reference.encode(TINY_INPUTS["token_ids"], TINY_INPUTS["padding_mask"], TINY_INPUTS["segment_ids"])
    return {"sequence_output": hidden.astype(np.float32), "pooled_output": reference.pooled(hidden).astype(np.float32)}


def prefixed_gamma_beta(tensors: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """Old-style names: "bert." prefix, LayerNorm gamma/beta, plus pre-training heads."""
    renamed = {"bert." + k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"): v
               for k, v in tensors.items()}
    renamed["cls.predictions.bias"] = np.zeros(3, np.float32)
    return renamed


def make_sharded(directory: Path) -> None:
    """Split model.safetensors into two shards with a model.safetensors.index.json."""
    tensors = load_file(str(directory / "model.safetensors"))
    names = sorted(tensors)
    shards = {"model-00001-of-00002.safetensors": names[::2], "model-00002-of-00002.safetensors": names[1::2]}
    for file, keys in shards.items():
        save_file({k: tensors[k] for k in keys}, str(directory / file))
    index = {"metadata": {}, "weight_map": {k: f for f, keys in shards.items() for k in keys}}
    (directory / "model.safetensors.index.json").write_text(json.dumps(index))
    (directory / "model.safetensors").unlink()


def tf2_h5_weight(key: str, value: np.ndarray):
    """How transformers' TFBertModel names and lays out a weight in tf_model.h5."""
    name = key
    if "word_embeddings" in name:
        name = "embeddings.word_embeddings.weight"
    elif "position_embeddings" in name or "token_type_embeddings" in name:
        name = name[: -len("weight")] + "embeddings"
    elif "LayerNorm" in name:
        name = name.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta")
    elif name.endswith(".weight"):
        name, value = name[: -len("weight")] + "kernel", value.T
    path = name.replace(".", "/").replace("encoder/layer/", "encoder/layer_._")
    return "tf_bert_model/bert/" + path + ":0", value


def make_tf_h5(directory: Path) -> None:
    """Replace model.safetensors by a transformers-style tf_model.h5 (Keras 2 HDF5 weights)."""
    import h5py

    tensors = load_file(str(directory / "model.safetensors"))
    with h5py.File(directory / "tf_model.h5", "w") as f:
        f.attrs["layer_names"] = [b"bert"]
        group = f.create_group("bert")
        names = []
        for key, value in tensors.items():
            name, array = tf2_h5_weight(key, value)
            group.create_dataset(name, data=array)
            names.append(name.encode())
        group.attrs["weight_names"] = names
    (directory / "model.safetensors").unlink()


@pytest.mark.parametrize("layout", ["prefixed_gamma_beta", "sharded", "tf_model_h5"])
def test_hugging_face_layouts_load_the_same_weights(tmp_path, tiny_checkpoint, tiny_outputs, layout):
    edit = prefixed_gamma_beta if layout == "prefixed_gamma_beta" else (lambda t: t)
    directory = Path(copy_hf(tiny_checkpoint, tmp_path / layout, edit))
    if layout == "sharded":
        make_sharded(directory)
    if layout == "tf_model_h5":
        make_tf_h5(directory)
    checkpoint = checkpoints.find_checkpoint(str(directory))
    assert (checkpoint.kind, checkpoint.activation) == ("hf", "gelu_exact")
    got = outputs(checkpoints.load_backbone(checkpoint), TINY_INPUTS)
    for name in ("sequence_output", "pooled_output"):
        np.testing.assert_allclose(got[name], tiny_outputs[name], atol=1e-5)


def test_missing_pooler_keeps_random_pooler_with_a_notice(tmp_path, tiny_checkpoint, tiny_outputs, capsys):
    directory = copy_hf(tiny_checkpoint, tmp_path / "token_model",
                        lambda t: {k: v for k, v in t.items() if not k.startswith("pooler.")})
    got = outputs(checkpoints.load_backbone(checkpoints.find_checkpoint(directory)), TINY_INPUTS)
    np.testing.assert_allclose(got["sequence_output"], tiny_outputs["sequence_output"], atol=1e-5)
    err = capsys.readouterr().err
    assert "no pooler weights" in err and len(err.strip().splitlines()) == 1


def test_pytorch_bin_loads_with_torch(tmp_path, tiny_checkpoint, tiny_outputs):
    torch = pytest.importorskip("torch")
    directory = tmp_path / "pt"
    shutil.copytree(tiny_checkpoint, directory)
    state = {"bert." + k: torch.from_numpy(v.copy()) for k, v in hf_state(tiny_checkpoint).items()}
    torch.save(state, directory / "pytorch_model.bin")
    (directory / "model.safetensors").unlink()
    got = outputs(checkpoints.load_backbone(checkpoints.find_checkpoint(str(directory))), TINY_INPUTS)
    np.testing.assert_allclose(got["pooled_output"], tiny_outputs["pooled_output"], atol=1e-5)


# --- errors ------------------------------------------------------------------------------------------------------


def load_error(path: str) -> InputError:
    """The InputError that finding and loading `path` raises."""
    with pytest.raises(InputError) as info:
        checkpoints.load_backbone(checkpoints.find_checkpoint(path))
    return info.value


def test_missing_tensor_is_named_with_its_file(tmp_path, tiny_checkpoint):
    directory = copy_hf(tiny_checkpoint, tmp_path / "m",
                        lambda t: {k: v for k, v in t.items() if k != "encoder.layer.1.output.dense.weight"})
    error = load_error(directory)
    assert error.path == os.path.join(directory, "model.safetensors")
    assert "encoder.layer.1.output.dense.weight is missing" in error.message


def test_wrong_shape_is_named_with_both_shapes(tmp_path, tiny_checkpoint):
    def shrink(tensors):
        tensors["encoder.layer.0.intermediate.dense.weight"] = np.zeros((63, 32), np.float32)
        return tensors

    error = load_error(copy_hf(tiny_checkpoint, tmp_path / "s", shrink))
    assert "encoder.layer.0.intermediate.dense.weight has shape [63, 32], the config needs [64, 32]" in error.message


def test_vocabulary_larger_than_the_embedding_table(tmp_path, tiny_checkpoint):
    directory = tmp_path / "v"
    shutil.copytree(tiny_checkpoint, directory)
    with open(directory / "vocab.txt", "a", encoding="utf-8") as f:
        f.write("extra1\nextra2\n")
    with pytest.raises(InputError, match="vocab_size") as info:
        checkpoints.find_checkpoint(str(directory))
    assert info.value.path == str(directory / "vocab.txt")


def test_unknown_formats_say_what_was_expected(tmp_path, tiny_checkpoint):
    (tmp_path / "odd").mkdir()
    (tmp_path / "odd" / "weights.npz").write_bytes(b"")
    with pytest.raises(InputError, match="bert_config.json.*keras-hub preset.*bert-tf"):
        checkpoints.find_checkpoint(str(tmp_path / "odd"))
    flax = tmp_path / "flax"
    shutil.copytree(tiny_checkpoint, flax)
    (flax / "model.safetensors").rename(flax / "flax_model.msgpack")
    with pytest.raises(InputError, match=r"expected model.safetensors.*tf_model.h5.*found flax_model.msgpack"):
        checkpoints.find_checkpoint(str(flax))


def test_pytorch_bin_without_torch_says_how_to_convert(tmp_path, tiny_checkpoint, monkeypatch):
    directory = tmp_path / "pt"
    shutil.copytree(tiny_checkpoint, directory)
    (directory / "model.safetensors").rename(directory / "pytorch_model.bin")
    monkeypatch.setattr(checkpoints.huggingface, "torch_available", lambda: False)
    with pytest.raises(InputError, match=r"pytorch_model.bin.*torch is not installed.*model.safetensors") as info:
        checkpoints.find_checkpoint(str(directory))
    assert info.value.path == str(directory)


def test_bad_config_is_named(tmp_path, tiny_checkpoint):
    directory = tmp_path / "c"
    shutil.copytree(tiny_checkpoint, directory)
    config = json.loads((directory / "config.json").read_text())
    (directory / "config.json").write_text(json.dumps({**config, "num_attention_heads": 5}))
    with pytest.raises(InputError, match="not a multiple of num_attention_heads 5"):
        checkpoints.find_checkpoint(str(directory))


# --- TensorFlow 1 checkpoints (tiny random model) ---------------------------------------------------------------


@pytest.fixture
def hf_tanh_outputs(tiny_checkpoint) -> Dict[str, np.ndarray]:
    """The tiny checkpoint loaded from Hugging Face files with the tanh GELU forced."""
    backbone = checkpoints.load_backbone(checkpoints.find_checkpoint(tiny_checkpoint))
    checkpoints.set_feedforward_activation(backbone, "gelu_tanh")
    return outputs(backbone, TINY_INPUTS)


def test_tf1_directory_loads_with_tanh_gelu(tmp_path, tiny_checkpoint, hf_tanh_outputs):
    checkpoint = checkpoints.find_checkpoint(str(write_google_dir(tmp_path / "g", tiny_checkpoint)))
    assert (checkpoint.kind, checkpoint.activation) == ("tf1", "gelu_tanh")
    got = outputs(checkpoints.load_backbone(checkpoint), TINY_INPUTS)
    for name in ("sequence_output", "pooled_output"):
        np.testing.assert_allclose(got[name], hf_tanh_outputs[name], atol=1e-6)


def test_trio_from_three_places(tmp_path, tiny_checkpoint, hf_tanh_outputs):
    google = write_google_dir(tmp_path / "g", tiny_checkpoint)
    for part in ("conf", "voc", "ckpt"):
        (tmp_path / part).mkdir()
    shutil.move(str(google / "bert_config.json"), tmp_path / "conf" / "bert_config.json")
    shutil.move(str(google / "vocab.txt"), tmp_path / "voc" / "vocab.txt")
    for file in google.glob("bert_model.ckpt.*"):
        shutil.move(str(file), tmp_path / "ckpt" / file.name.replace("bert_model.ckpt", "model.ckpt-28252"))
    prefix = str(tmp_path / "ckpt" / "model.ckpt-28252")
    checkpoint = checkpoints.tf1.checkpoint_from_trio(str(tmp_path / "conf" / "bert_config.json"),
                                                  str(tmp_path / "voc" / "vocab.txt"), prefix)
    assert (checkpoint.kind, checkpoint.path, checkpoint.activation) == ("tf1", prefix, "gelu_tanh")
    got = outputs(checkpoints.load_backbone(checkpoint, dropout=0.0), TINY_INPUTS)
    np.testing.assert_allclose(got["sequence_output"], hf_tanh_outputs["sequence_output"], atol=1e-6)
    assert checkpoints.tf1.trio_tokenizer(str(tmp_path / "voc" / "vocab.txt")).lowercase is True
    assert checkpoints.tf1.checkpoint_from_trio(str(tmp_path / "conf" / "bert_config.json"),
                                            str(tmp_path / "voc" / "vocab.txt"), prefix + ".index").path == prefix


def test_trio_errors_name_the_file(tmp_path, tiny_checkpoint):
    google = write_google_dir(tmp_path / "g", tiny_checkpoint)
    config, vocab = str(google / "bert_config.json"), str(google / "vocab.txt")
    with pytest.raises(InputError, match="no TensorFlow checkpoint with this prefix"):
        checkpoints.tf1.checkpoint_from_trio(config, vocab, str(google / "model.ckpt-5"))
    with pytest.raises(InputError, match="does not exist") as info:
        checkpoints.tf1.checkpoint_from_trio(str(google / "nope.json"), vocab, str(google / "bert_model.ckpt"))
    assert info.value.path.endswith("nope.json")
    big = tmp_path / "big_vocab.txt"
    big.write_text(Path(vocab).read_text() + "more\nwords\n")
    with pytest.raises(InputError, match="vocab_size") as info:
        checkpoints.tf1.checkpoint_from_trio(config, str(big), str(google / "bert_model.ckpt"))
    assert info.value.path == str(big)


def test_tf1_prefix_path_and_missing_data_file(tmp_path, tiny_checkpoint):
    google = write_google_dir(tmp_path / "g", tiny_checkpoint)
    checkpoint = checkpoints.find_checkpoint(str(google / "bert_model.ckpt"))
    assert (checkpoint.kind, checkpoint.path) == ("tf1", str(google / "bert_model.ckpt"))
    for data in google.glob("bert_model.ckpt.data-*"):
        data.unlink()
    with pytest.raises(InputError, match="has no data file"):
        checkpoints.find_checkpoint(str(google))


def test_tf1_missing_tensor_names_google_variable(tmp_path, tiny_checkpoint):
    name = "bert/encoder/layer_1/attention/self/key/kernel"
    google = write_google_dir(tmp_path / "g", tiny_checkpoint, edit=lambda t: {k: v for k, v in t.items() if k != name})
    error = load_error(str(google))
    assert error.path == str(google / "bert_model.ckpt")
    assert f"{name} is missing" in error.message


def test_tf1_wrong_shape_names_google_variable(tmp_path, tiny_checkpoint):
    def shrink(tensors):
        tensors["bert/encoder/layer_0/intermediate/dense/kernel"] = np.zeros((32, 63), np.float32)
        return tensors

    error = load_error(str(write_google_dir(tmp_path / "g", tiny_checkpoint, edit=shrink)))
    expected = "bert/encoder/layer_0/intermediate/dense/kernel has shape [32, 63], the config needs [32, 64]"
    assert expected in error.message


def test_tf1_unexpected_variables_get_a_notice(tmp_path, tiny_checkpoint, capsys):
    extras = {**TF1_EXTRAS, "output_weights": np.zeros((3, 32), np.float32)}
    checkpoints.load_backbone(checkpoints.find_checkpoint(str(write_google_dir(tmp_path / "g", tiny_checkpoint, extras))))
    err = capsys.readouterr().err
    assert "ignored 1 variable(s)" in err and "output_weights" in err and "adam" not in err


def test_tf1_picks_the_highest_step_or_the_checkpoint_file(tmp_path):
    for step in (900, 2000):
        checkpoint_factory.write_tf1_checkpoint(str(tmp_path / f"model.ckpt-{step}"), {"global_step": np.array(step)})
    checkpoint_factory.write_tf1_checkpoint(str(tmp_path / "bert_model.ckpt"), {"global_step": np.array(0)})
    assert checkpoints.tf1.resolve_tf1_prefix(str(tmp_path)) == str(tmp_path / "model.ckpt-2000")
    (tmp_path / "checkpoint").write_text('model_checkpoint_path: "/elsewhere/run/model.ckpt-900"\n'
                                         'all_model_checkpoint_paths: "/elsewhere/run/model.ckpt-900"\n')
    assert checkpoints.tf1.resolve_tf1_prefix(str(tmp_path)) == str(tmp_path / "model.ckpt-900")


def test_tf1_activations(tmp_path, tiny_checkpoint):
    google = write_google_dir(tmp_path / "g", tiny_checkpoint)
    config = json.loads((google / "bert_config.json").read_text())
    (google / "bert_config.json").write_text(json.dumps({**config, "hidden_act": "relu"}))
    assert checkpoints.find_checkpoint(str(google)).activation == "relu"
    (google / "bert_config.json").write_text(json.dumps({**config, "hidden_act": "swish"}))
    with pytest.raises(InputError, match="unsupported hidden_act 'swish'") as info:
        checkpoints.find_checkpoint(str(google))
    assert info.value.path == str(google / "bert_config.json")


# --- formats that already worked ---------------------------------------------------------------------------------


def test_keras_hub_preset_and_bert_tf_model_still_load(tmp_path, tiny_checkpoint, tiny_outputs):
    from bert_tf.tokenization import WordPieceTokenizer

    backbone = checkpoints.load_backbone(checkpoints.find_checkpoint(tiny_checkpoint))
    backbone.save_to_preset(str(tmp_path / "preset"))
    preset = checkpoints.find_checkpoint(str(tmp_path / "preset"))
    assert preset.kind == "keras_hub"
    assert checkpoints.load_backbone(preset).vocabulary_size == backbone.vocabulary_size

    task = checkpoints.build_task_model(checkpoints.find_checkpoint(tiny_checkpoint),
                                   WordPieceTokenizer.from_model_dir(tiny_checkpoint), ["O", "B-X"], "token", 0.1)
    checkpoints.save_model(task, str(tmp_path / "saved"))
    saved = checkpoints.find_checkpoint(str(tmp_path / "saved"))
    assert (saved.kind, saved.activation) == ("bert_tf", "gelu_exact")
    got = outputs(checkpoints.load_backbone(saved, dropout=0.3), TINY_INPUTS)
    np.testing.assert_allclose(got["sequence_output"], tiny_outputs["sequence_output"], atol=1e-5)
