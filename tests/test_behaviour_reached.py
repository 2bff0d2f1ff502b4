"""Behaviour that the command lines promise, checked by its effect: run_ner.py's --freeze_layers, --double_lr and
--nolinear_scheduler reach the training loop; the best validation epoch (not the last) is the one reported and
kept; float16 training itself; a cased checkpoint stays cased; an output folder that cannot be written is one
line and exit 2."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import NER_QUICK, TINY_WORDS, error_lines, run_script
from killing import run_in_process
from test_run_ner import write_learnable_set

LEARNING_RATE, GAMMA = 1e-2, 0.5


@pytest.fixture(scope="module")
def flagged_run(tmp_path_factory, tiny_checkpoint):
    """run_ner.py with --freeze_layers=1 --double_lr --nolinear_scheduler --gamma=0.5: 2 epochs of 4 steps (its command
    line in this process: the flags are what is checked)."""
    base = tmp_path_factory.mktemp("ner_flags")
    data = write_learnable_set(base / "data", sizes=(("train", 32), ("val", 8), ("test", 8)))
    out = base / "out"
    process = run_in_process(["run_ner.py", NER_QUICK, f"--bert_model={tiny_checkpoint}", f"--data_path={data}",
                              f"--save_model_path={out}", "--max_len=32", "--epochs=2", "--batch_size=8",
                              f"--learning_rate={LEARNING_RATE}", "--patience=0", "--seed=4", "--freeze_layers=1",
                              "--double_lr", "--nolinear_scheduler", f"--gamma={GAMMA}", "--notensorboard"])
    assert process.returncode == 0, process.stderr[-3000:]
    return out, process


def _layer_weights(backbone, name: str):
    return backbone.get_layer(name).get_weights()


def test_freeze_layers_and_double_lr_reach_the_weights(flagged_run, tiny_checkpoint):
    """--freeze_layers=1: the embeddings and the first encoder layer are the checkpoint's, to the bit; the second
    layer trained. --double_lr: it moved at most what 8 AdamW steps at a tenth of the rate can move it, the head
    further."""
    from bert_tf import checkpoints

    out, _ = flagged_run
    before = checkpoints.load_backbone(checkpoints.find_checkpoint(tiny_checkpoint))
    trained = checkpoints.load_saved_model(str(out))
    after = trained.backbone
    for name in ("token_embedding", "position_embedding", "segment_embedding", "embeddings_layer_norm",
                 "transformer_layer_0"):
        for a, b in zip(_layer_weights(before, name), _layer_weights(after, name)):
            assert np.array_equal(a, b), name
    moved = max(float(np.abs(a - b).max()) for a, b in zip(_layer_weights(before, "transformer_layer_1"),
                                                           _layer_weights(after, "transformer_layer_1")))
    steps = 2 * 4
    assert 0 < moved <= 1.5 * steps * LEARNING_RATE / 10, moved  # an Adam step moves a weight by about its rate
    head = [v for v in trained.model.trainable_variables if v.path.startswith("classifier")]
    assert head and max(float(np.abs(v.numpy()).max()) for v in head) > 1.5 * steps * LEARNING_RATE / 10


def test_nolinear_scheduler_decays_by_gamma_each_epoch(flagged_run):
    out, _ = flagged_run
    history = pd.read_csv(out / "history.csv")
    rates = history[history.split == "train"].learning_rate.tolist()
    assert rates == pytest.approx([LEARNING_RATE * GAMMA, LEARNING_RATE * GAMMA ** 2], rel=1e-5)


def test_the_best_epoch_not_the_last_is_reported_and_kept(tmp_path):
    """BestModelMonitor inside a real Trainer.fit: validation F1 0.5, 0.9, 0.6, 0.4 by epoch with patience 2:
    training stops after epoch 4, the best (epoch 2) is reported, saved when it was reached, and restored."""
    import keras
    import tensorflow as tf

    from bert_tf.training import BestModelMonitor, Trainer

    inputs = keras.Input((4,), name="token_ids")
    model = keras.Model(inputs, keras.layers.Dense(3, name="classifier")(inputs))
    batch = {"token_ids": np.eye(4, dtype=np.float32)[[0, 1, 2, 3]], "labels": np.array([0, 1, 2, 0], np.int32)}
    scores, saved = iter([0.5, 0.9, 0.6, 0.4, 0.3]), []
    monitor = BestModelMonitor("val_f1", lambda: saved.append([w.copy() for w in model.get_weights()]), patience=2,
                               verbose=False)
    trainer = Trainer(model, keras.optimizers.SGD(0.5), tf.distribute.get_strategy(), feature_keys=("token_ids",),
                      verbose=False)
    history = trainer.fit(lambda epoch, first: (tf.data.Dataset.from_tensors(batch), 1), epochs=5,
                          validate=lambda: {"f1": next(scores)}, callbacks=[monitor])
    assert [row["epoch"] for row in history if row["split"] == "train"] == [1.0, 2.0, 3.0, 4.0]  # stopped early
    assert (monitor.best, monitor.best_position) == (0.9, 2.0) and len(saved) == 2
    last = model.get_weights()
    monitor.restore_best(model, lambda: pytest.fail("the best weights are in memory"))
    for got, best, final in zip(model.get_weights(), saved[-1], last):
        assert np.array_equal(got, best)
    assert any(not np.array_equal(b, f) for b, f in zip(saved[-1], last))  # training went on after the best


def test_float16_training_runs_and_learns_on_the_cpu(tiny_checkpoint):
    """mixed_float16 with loss scaling (what --use_amp picks on a GPU without bfloat16): the layers compute in
    float16, and a few steps on one batch give finite, falling losses."""
    import keras
    import tensorflow as tf

    from bert_tf import checkpoints, optimization
    from bert_tf.tokenization import WordPieceTokenizer
    from bert_tf.training import Trainer

    rng = np.random.default_rng(0)
    batch = {"token_ids": rng.integers(5, 30, (4, 8)).astype(np.int32), "padding_mask": np.ones((4, 8), np.int32),
             "segment_ids": np.zeros((4, 8), np.int32), "labels": rng.integers(0, 2, (4, 8)).astype(np.int32)}
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        task = checkpoints.build_task_model(checkpoints.find_checkpoint(tiny_checkpoint),
                                            WordPieceTokenizer.from_model_dir(tiny_checkpoint), ["O", "B-X"], "token",
                                            0.0)
        assert task.backbone.get_layer("transformer_layer_0").compute_dtype == "float16"
        trainer = Trainer(task.model, optimization.make_optimizer("adamw", 1e-2, 0.0), tf.distribute.get_strategy(),
                          loss_scale=True, verbose=False)
        history = trainer.fit(lambda epoch, first: (tf.data.Dataset.from_tensors(batch), 1), epochs=6,
                              validations_per_epoch=0)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    losses = [row["loss"] for row in history if row["split"] == "train"]
    assert isinstance(trainer.optimizer, keras.optimizers.LossScaleOptimizer)
    assert len(losses) == 6 and all(np.isfinite(losses)) and losses[-1] < 0.7 * losses[0], losses


def test_a_cased_checkpoint_keeps_case_through_saving(tmp_path):
    from checkpoint_factory import make_random_hf_checkpoint

    from bert_tf.tokenization import WordPieceTokenizer

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + TINY_WORDS + ["Paris", "Alice"]
    cased = make_random_hf_checkpoint(str(tmp_path / "cased"), vocab, hidden=8, layers=1, heads=1,
                                      intermediate=8, max_positions=16, lowercase=False)
    tokenizer = WordPieceTokenizer.from_model_dir(cased)
    ids = [vocab.index(w) for w in ("Paris", "paris", "Alice", "alice")]
    assert tokenizer.encode_words(["Paris", "paris", "Alice", "alice"]) == [[i] for i in ids]
    tokenizer.save(str(tmp_path / "saved"))
    again = WordPieceTokenizer.from_model_dir(str(tmp_path / "saved"))
    assert again.encode_words(["Paris", "paris"]) == [[ids[0]], [ids[1]]]
    uncased = WordPieceTokenizer.from_model_dir(cased, do_lower_case=True)
    assert uncased.encode_words(["Paris"]) == [[ids[1]]]


@pytest.mark.parametrize("script", ["run_ner.py", "run_classifier.py"])
def test_an_output_folder_that_cannot_be_written_is_one_line_and_exit_2(tmp_path, tiny_checkpoint, script):
    (tmp_path / "a_file").write_text("not a folder", encoding="utf-8")
    out = tmp_path / "a_file" / "out"
    data = write_learnable_set(tmp_path / "data", sizes=(("train", 8), ("val", 4), ("test", 4)))
    args = ([NER_QUICK, f"--data_path={data}", f"--save_model_path={out}", "--epochs=1", "--max_len=16"]
            if script == "run_ner.py" else
            [f"--data_dir={tmp_path}", f"--output_dir={out}", "--do_train", "--max_seq_length=16"])
    for split in ("train", "dev"):
        (tmp_path / f"{split}.tsv").write_text("d1\ta1\tche\tleft \tx\t right\n", encoding="utf-8")
    process = run_script([script, f"--bert_model={tiny_checkpoint}", *args])
    assert process.returncode == 2, process.stderr[-3000:]
    assert error_lines(process) == [f"error: {out}: the output folder cannot be created or written: Not a directory"]
    assert (tmp_path / "a_file").read_text(encoding="utf-8") == "not a folder"


@pytest.mark.parametrize("name", ["adamw", "lamb"])
def test_the_classifier_optimizer_setting_reaches_its_trainer(tiny_checkpoint, name):
    """--optimizer: the classifier's trainer steps with that optimizer (LAMB's layer-wise trust ratio or AdamW)."""
    import tensorflow as tf

    from bert_tf import checkpoints, distribution
    from bert_tf.classifier import fitting
    from bert_tf.classifier.config import ClassifierConfig
    from bert_tf.optimization import BertLamb
    from bert_tf.tokenization import WordPieceTokenizer

    cfg = ClassifierConfig(optimizer=name, learning_rate=1e-3, verbose=False)
    run = distribution.RunContext(tf.distribute.get_strategy(), "float32", False)
    _, trainer = fitting.build_model(cfg, run, checkpoints.find_checkpoint(tiny_checkpoint),
                                     WordPieceTokenizer.from_model_dir(tiny_checkpoint), ["a", "b"],
                                     fitting.Steps(4, 8, 2, 1), None)
    assert isinstance(trainer.optimizer, BertLamb) == (name == "lamb")
    assert type(trainer.optimizer).__name__ == ("BertLamb" if name == "lamb" else "BertAdamW")


def test_pretraining_data_settings_reach_the_training_stream(tiny_checkpoint, tmp_path):
    """--input_files_dir --masked_lm_prob --nowhole_word_masking --shuffle_buffer: the stream the training loop
    reads takes the folder's files, masks at that rate piece by piece, through that shuffle buffer."""
    from bert_tf.pretraining import data as pretraining_data
    from bert_tf.pretraining.config import PretrainingConfig
    from bert_tf.tokenization import WordPieceTokenizer

    folder = tmp_path / "texts"
    folder.mkdir()
    for i in range(2):
        (folder / f"part{i}.txt").write_text("alice met bob in paris .\ncarol visited rome .\n" * 10, encoding="utf-8")
    cfg = PretrainingConfig(bert_model=tiny_checkpoint, input_files_dir=str(folder), masked_lm_prob=0.3,
                            whole_word_masking=False, shuffle_buffer=5, max_seq_length=32,
                            max_predictions_per_seq=20, eval_fraction=0.0, seed=1, verbose=False)
    data = pretraining_data.read_training_data(cfg, WordPieceTokenizer.from_model_dir(tiny_checkpoint), 4)
    assert sorted(data.train.corpus.paths) == sorted(str(p) for p in folder.glob("*.txt"))
    assert (data.train.masking.masked_lm_prob, data.train.masking.whole_word, data.train.shuffle_buffer) == (
        0.3, False, 5)
    assert "streamed from 2 file(s) through a shuffle buffer of 5 blocks" in data.described
