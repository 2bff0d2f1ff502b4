"""Sequence-classifier pooling (pooler, cls, mention): what the head reads, the frozen pooler, saving, temperature
folding and the Hugging Face export of a mention-pooled model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bert_tf import checkpoints, models
from bert_tf.checkpoints import hf_task
from bert_tf.errors import InputError
from bert_tf.tokenization import WordPieceTokenizer

LABELS = ["che", "dis", "out"]
LENGTH = 8  # the mention's first token sits at LENGTH // 2 = 4
INPUTS = {
    "token_ids": np.array([[2, 0, 10, 11, 5, 12, 3, 0], [2, 13, 14, 15, 5, 16, 17, 3]], np.int32),
    "padding_mask": np.array([[1, 0, 1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 1, 1, 1, 1]], np.int32),
    "segment_ids": np.zeros((2, LENGTH), np.int32),
}


def build(tiny_checkpoint: str, pooling: str) -> models.TaskModel:
    """A sequence classifier on the tiny checkpoint with the given pooling."""
    return checkpoints.build_task_model(checkpoints.find_checkpoint(tiny_checkpoint),
                                   WordPieceTokenizer.from_model_dir(tiny_checkpoint), LABELS, "sequence", 0.1,
                                   pooling=pooling)


def head_by_hand(task: models.TaskModel, features: np.ndarray) -> np.ndarray:
    """The classifier layer applied to `features` with numpy."""
    layer = task.model.get_layer("classifier")
    return features @ layer.kernel.numpy() + layer.bias.numpy()


@pytest.mark.parametrize("pooling, index", [("cls", 0), ("mention", LENGTH // 2)])
def test_token_pooling_reads_the_right_hidden_state(tiny_checkpoint, pooling, index):
    task = build(tiny_checkpoint, pooling)
    sequence = np.asarray(task.backbone(INPUTS, training=False)["sequence_output"])
    logits = np.asarray(task.model(INPUTS, training=False))
    np.testing.assert_allclose(logits, head_by_hand(task, sequence[:, index]), atol=1e-5)
    other = 1 if index == 0 else 0
    assert np.abs(logits - head_by_hand(task, sequence[:, other])).max() > 1e-4


def test_pooler_pooling_reads_the_pooled_output(tiny_checkpoint):
    task = build(tiny_checkpoint, "pooler")
    pooled = np.asarray(task.backbone(INPUTS, training=False)["pooled_output"])
    np.testing.assert_allclose(np.asarray(task.model(INPUTS, training=False)), head_by_hand(task, pooled), atol=1e-5)


@pytest.mark.parametrize("pooling", ["pooler", "cls", "mention"])
def test_unused_pooler_is_frozen(tiny_checkpoint, pooling):
    task = build(tiny_checkpoint, pooling)
    pooler_trainable = [v.path for v in task.model.trainable_variables if "pooled_dense" in v.path]
    pooler_all = [v.path for v in task.model.variables if "pooled_dense" in v.path]
    assert pooler_all  # the weights are still there (they are saved and exported)
    assert bool(pooler_trainable) == (pooling == "pooler")


def test_pooling_is_saved_and_loaded_and_temperature_folds_into_the_logits(tiny_checkpoint, tmp_path: Path):
    task = build(tiny_checkpoint, "mention")
    before = np.asarray(task.model(INPUTS, training=False))
    models.fold_temperature(task, 2.0)
    np.testing.assert_allclose(np.asarray(task.model(INPUTS, training=False)), before / 2.0, rtol=1e-5, atol=1e-6)
    checkpoints.save_model(task, str(tmp_path / "model"))
    meta = json.loads((tmp_path / "model" / checkpoints.SAVED_MODEL_META).read_text())
    assert meta["pooling"] == "mention" and meta["temperature"] == 2.0
    loaded = checkpoints.load_saved_model(str(tmp_path / "model"))
    assert loaded.pooling == "mention" and loaded.meta["temperature"] == 2.0
    np.testing.assert_allclose(np.asarray(loaded.model(INPUTS, training=False)), before / 2.0, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError):
        models.fold_temperature(task, 0.0)


def test_models_saved_without_pooling_load_with_the_pooler(tiny_checkpoint, tmp_path: Path):
    task = build(tiny_checkpoint, "pooler")
    checkpoints.save_model(task, str(tmp_path / "model"))
    meta_path = tmp_path / "model" / checkpoints.SAVED_MODEL_META
    meta = json.loads(meta_path.read_text())
    del meta["pooling"]
    meta_path.write_text(json.dumps(meta))
    assert checkpoints.load_saved_model(str(tmp_path / "model")).pooling == "pooler"


def test_bad_pooling_is_an_input_error(tiny_checkpoint):
    with pytest.raises(InputError, match="pooling 'mean'"):
        build(tiny_checkpoint, "mean")
    with pytest.raises(InputError, match="sequence classifiers only"):
        checkpoints.build_task_model(checkpoints.find_checkpoint(tiny_checkpoint),
                                WordPieceTokenizer.from_model_dir(tiny_checkpoint), LABELS, "token", 0.1,
                                pooling="mention")


def test_mention_pooled_hf_export(tiny_checkpoint, tmp_path: Path):
    task = build(tiny_checkpoint, "mention")
    rng = np.random.default_rng(3)
    for variable in task.model.variables:
        variable.assign(variable.numpy() + rng.normal(0.0, 0.05, variable.shape).astype("float32"))
    expected = np.asarray(task.model(INPUTS, training=False))
    out = tmp_path / "hf"
    hf_task.export_hf(task, str(out))
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["BertModel"] and config["bert_tf_pooling"] == "mention"
    reloaded = hf_task.load_hf_task_model(str(out))
    assert (reloaded.head, reloaded.pooling) == ("sequence", "mention")
    np.testing.assert_allclose(np.asarray(reloaded.model(INPUTS, training=False)), expected, atol=1e-5)
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from safetensors.numpy import load_file

    bert = transformers.BertModel.from_pretrained(str(out))
    bert.eval()
    with torch.no_grad():
        hidden = bert(input_ids=torch.from_numpy(INPUTS["token_ids"]).long(),
                      attention_mask=torch.from_numpy(INPUTS["padding_mask"]).long(),
                      token_type_ids=torch.from_numpy(INPUTS["segment_ids"]).long()).last_hidden_state.numpy()
    tensors = load_file(str(out / "model.safetensors"))
    logits = hidden[:, LENGTH // 2] @ tensors["classifier.weight"].T + tensors["classifier.bias"]
    np.testing.assert_allclose(logits, expected, atol=1e-4)


def test_fine_tuning_a_mention_pooled_model_with_the_pooler_trains_the_pooler(tiny_checkpoint, tmp_path: Path):
    checkpoints.save_model(build(tiny_checkpoint, "mention"), str(tmp_path / "model"))
    again = checkpoints.build_task_model(checkpoints.find_checkpoint(str(tmp_path / "model")),
                                    WordPieceTokenizer.from_model_dir(str(tmp_path / "model")), LABELS, "sequence",
                                    0.1, pooling="pooler")
    assert any("pooled_dense" in v.path for v in again.model.trainable_variables)
