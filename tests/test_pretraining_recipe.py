"""NVIDIA's pretraining recipe: its LAMB update and learning-rate schedule (against numpy transcriptions of NVIDIA's
TF1 optimization.py written here, independent of bert_tf.optimization), the --horovod rate scaling, the published
flags, the run table's claims, and Google's cap on masked positions."""

from __future__ import annotations

import json
import os
import re

import numpy as np
import pytest

from bert_tf import config
from bert_tf.errors import InputError
from bert_tf.pretraining.config import PretrainingConfig, check, with_horovod

# --- numpy transcriptions of NVIDIA's TensorFlow/LanguageModeling/BERT/optimization.py -------------------------

NVIDIA_EXCLUDED = ["LayerNorm", "layer_norm", "bias"]  # LAMBOptimizer(exclude_from_weight_decay=...)


def nvidia_learning_rate(init_lr: float, step: int, num_train_steps: int, num_warmup_steps: int,
                         optimizer_type: str) -> float:
    """create_optimizer's rate at `global_step`: polynomial_decay(adjusted_init_lr, power) then the warm-up."""
    if optimizer_type == "adam":
        power = 1.0
        crossover = init_lr * (1.0 - num_warmup_steps / num_train_steps) ** power
    else:
        power = 0.5
        crossover = init_lr
    adjusted = init_lr * (init_lr / crossover)
    decayed = adjusted * (1.0 - min(step, num_train_steps) / num_train_steps) ** power  # end_learning_rate 0
    if num_warmup_steps and step < num_warmup_steps:
        return init_lr * step / num_warmup_steps
    return decayed


def nvidia_lamb_step(param, grad, m, v, lr, t, name, weight_decay_rate=0.01, beta_1=0.9, beta_2=0.999,
                     epsilon=1e-6):
    """LAMBOptimizer.apply_gradients for one variable in float64 (t: the update's number, 1 first)."""
    next_m = beta_1 * m + (1.0 - beta_1) * grad
    next_v = beta_2 * v + (1.0 - beta_2) * grad ** 2
    update = (next_m / (1 - beta_1 ** t)) / (np.sqrt(next_v / (1 - beta_2 ** t)) + epsilon)
    if weight_decay_rate and not any(re.search(r, name) for r in NVIDIA_EXCLUDED):
        update = update + weight_decay_rate * param
    w_norm, g_norm = np.linalg.norm(param), np.linalg.norm(update)
    ratio = (w_norm / g_norm if g_norm > 0 else 1.0) if w_norm > 0 else 1.0
    return param - ratio * lr * update, next_m, next_v


# --- the update rule and the schedule ---------------------------------------------------------------------

# (TF1 name NVIDIA's exclusions read, the Keras variable name bert-tf's read, shape)
VARIABLES = [("bert/encoder/layer_0/attention/self/query/kernel", "kernel", (6, 4)),
             ("bert/encoder/layer_0/attention/self/query/bias", "bias", (4,)),
             ("bert/encoder/layer_0/output/LayerNorm/gamma", "gamma", (4,)),
             ("bert/encoder/layer_0/output/LayerNorm/beta", "beta", (4,)),
             ("cls/predictions/output_bias", "output_bias", (9,)),
             ("cls/seq_relationship/output_weights", "kernel", (2, 4)),
             ("bert/zero_initialised/kernel", "kernel", (3, 3))]  # |w| = 0 at first: trust ratio 1


def test_lamb_and_schedule_match_nvidia_update():
    """Six updates of TrustRatioLamb under the published schedule (warm-up 2 of 6 steps, peak 0.05: LAMB-scale, so
    the weight decay matters) against the transcription, to 1e-6."""
    import keras

    from bert_tf import optimization

    rng = np.random.default_rng(7)
    start = [np.zeros(shape) if "zero" in tf1 else rng.standard_normal(shape) for tf1, _, shape in VARIABLES]
    grads = [[rng.standard_normal(shape) * 10 ** rng.uniform(-3, 0) for _, _, shape in VARIABLES] for _ in range(6)]
    variables = [keras.Variable(w.astype(np.float32), name=name) for w, (_, name, _) in zip(start, VARIABLES)]
    schedule = optimization.make_schedule("published", "lamb", 0.05, 2, 6)
    optimizer = optimization.make_optimizer("lamb", schedule, 0.01, lamb_decay="trust_ratio")
    optimizer.build(variables)
    params, ms, vs = [w.copy() for w in start], [np.zeros_like(w) for w in start], [np.zeros_like(w) for w in start]
    for step, step_grads in enumerate(grads):
        optimizer.apply_gradients([(g.astype(np.float32), v) for g, v in zip(step_grads, variables)])
        lr = nvidia_learning_rate(0.05, step, 6, 2, "lamb")
        for i, (tf1, _, _) in enumerate(VARIABLES):
            params[i], ms[i], vs[i] = nvidia_lamb_step(params[i], step_grads[i], ms[i], vs[i], lr, step + 1, tf1)
        for variable, expected, (tf1, _, _) in zip(variables, params, VARIABLES):
            np.testing.assert_allclose(variable.numpy(), expected, atol=1e-6, rtol=0, err_msg=f"{tf1} step {step}")
    moved = [np.abs(p - s).max() for p, s in zip(params, start)]
    assert min(moved) > 1e-3  # every variable trained (the comparison is not of unchanged weights)
    decoupled = optimization.make_optimizer("lamb", schedule, 0.01, lamb_decay="decoupled")
    assert type(decoupled) is optimization.BertLamb and type(optimizer) is optimization.TrustRatioLamb


@pytest.mark.parametrize("optimizer", ["lamb", "adamw"])
def test_published_schedule_is_nvidias(optimizer):
    from bert_tf import optimization

    nvidia_name = "adam" if optimizer == "adamw" else "lamb"
    cases = [(9.625e-5, 1953, 19531), (2.9e-4, 434, 4340), (1e-3, 0, 50)]
    for peak, warmup, total in cases + ([(1e-3, 7, 7)] if optimizer == "lamb" else []):  # NVIDIA's Adam: 1 / 0
        schedule = optimization.make_schedule("published", optimizer, peak, warmup, total)
        steps = sorted({0, 1, warmup - 1, warmup, warmup + 1, total // 2, total - 1, total, total + 5} - {-1})
        ours = np.array([float(schedule(s)) for s in steps])
        theirs = np.array([nvidia_learning_rate(peak, s, total, warmup, nvidia_name) for s in steps])
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=peak * 1e-6)  # float32, as NVIDIA's


def test_schedules_at_nine_tenths_of_the_run():
    """The issue's figures: at 0.9 of a run with 10 % warm-up LAMB's published rate is 0.32 x the peak, the linear
    schedule's 0.11 x; for Adam the published schedule is the linear one (NVIDIA's crossover rule)."""
    from bert_tf import optimization

    published = optimization.make_schedule("published", "lamb", 1.0, 100, 1000)
    linear = optimization.make_schedule("linear", "lamb", 1.0, 100, 1000)
    assert float(published(900)) == pytest.approx(0.1 ** 0.5, rel=1e-6)
    assert float(linear(900)) == pytest.approx(1 / 9, rel=1e-6)
    assert float(published(100)) == pytest.approx(0.9 ** 0.5, rel=1e-6)  # LAMB's drop at the end of the warm-up
    adam = optimization.make_schedule("published", "adamw", 1.0, 100, 1000)
    for step in (0, 50, 100, 101, 500, 999, 1000):
        assert float(adam(step)) == pytest.approx(float(optimization.WarmupLinearDecay(1.0, 100, 1000)(step)),
                                                  rel=1e-6, abs=1e-6)  # float32


def test_head_warmup_phase_rate_then_the_schedule_from_its_end():
    from bert_tf import optimization

    inner = optimization.make_schedule("published", "lamb", 1e-4, 2, 10)
    phased = optimization.AfterConstantPhase(inner, 3, 1e-3)
    assert [float(phased(s)) for s in range(3)] == pytest.approx([1e-3] * 3)
    assert [float(phased(s)) for s in range(3, 14)] == pytest.approx([float(inner(s)) for s in range(11)])


# --- the --horovod rate and the run table ------------------------------------------------------------------


def _published_config(**overrides) -> PretrainingConfig:
    """The published phase-1 settings (run_pretraining_pubmed_base_phase_1.sh)."""
    values = dict(bert_config_file="cfg.json", init_checkpoint="ckpt", input_files_dir="train", output_dir="out",
                  eval_files_dir="test", train_batch_size=128, eval_batch_size=80, max_seq_length=128,
                  max_predictions_per_seq=20, num_train_steps=19531, num_warmup_steps=1953,
                  save_checkpoints_steps=5000, num_accumulation_steps=32, learning_rate=9.625e-5, report_loss=True,
                  horovod=True, use_fp16=True, use_xla=True)
    return PretrainingConfig(**{**values, **overrides})


@pytest.fixture
def sixteen_ranks(monkeypatch):
    """Rank 0 of a 16-rank Open MPI launch."""
    for key in ("TF_CONFIG", "BERT_TF_LOCAL_RANK"):
        monkeypatch.delenv(key, raising=False)
    for key, value in {"OMPI_COMM_WORLD_RANK": "0", "OMPI_COMM_WORLD_SIZE": "16", "OMPI_COMM_WORLD_LOCAL_RANK": "0",
                       "OMPI_COMM_WORLD_LOCAL_SIZE": "16", "BERT_TF_MPI_PORT": "23456"}.items():
        monkeypatch.setenv(key, value)


def _launched(**overrides) -> PretrainingConfig:
    """The published config as one rank of the launch sees it (the cluster built afresh)."""
    os.environ.pop("TF_CONFIG", None)
    return with_horovod(_published_config(**overrides))


def test_horovod_scales_the_rate_by_the_ranks(sixteen_ranks, capsys):
    from bert_tf.pretraining import run

    cfg = _launched()
    assert (cfg.horovod_ranks, cfg.train_batch_size, cfg.update_batch_size) == (16, 2048, 65536)
    assert cfg.peak_learning_rate == pytest.approx(9.625e-5 * 16)
    assert run.describe_rate(cfg).startswith("peak 0.00154 (--learning_rate 9.625e-05 x 16 ranks, as NVIDIA's "
                                             "--horovod); linear warm-up to 0.00154 over 1953 steps, then 0.00154 "
                                             "x (1 - step / 19531) ^ 0.5")
    unscaled = _launched(scale_learning_rate_by_ranks=False)
    assert unscaled.peak_learning_rate == 9.625e-5 and "not scaled" in run.describe_rate(unscaled)
    assert with_horovod(_published_config(horovod=False)).peak_learning_rate == 9.625e-5
    assert "--horovod: 16 MPI ranks" in capsys.readouterr().out


def test_published_flags_accepted_no_ops_said_once(capsys):
    from bert_tf.pretraining import run

    cfg = _published_config(horovod=False, dllog_path="/results/bert_dllog.json", allreduce_post_accumulation=True,
                            display_loss_steps=10, manual_fp16=False)
    check(cfg)
    config.note_published_noops(cfg)
    err = capsys.readouterr().err.splitlines()
    assert [line.split(" does nothing")[0] for line in err] == [
        "note: --dllog_path=/results/bert_dllog.json", "note: --allreduce_post_accumulation=True",
        "note: --display_loss_steps=10"]
    assert _published_config(amp=True, use_fp16=False).mixed_precision
    assert "report_loss" not in config.values(cfg, [config.RESULT])  # a no-op does not fingerprint the run
    assert run.describe_optimizer(cfg) == ("lamb, weight decay 0.01 (not on LayerNorm weights or biases) inside the "
                                           "trust ratio, as NVIDIA's LAMB; gradients clipped to global norm 1")


def test_masked_positions_capped_as_google():
    """Google's create_pretraining_data.py predicts min(max_predictions_per_seq, max(1, round(n x
    masked_lm_prob))) positions: length-512 records with 76 predictions (77 wanted) are valid, as are its phase-1/2
    settings."""
    from bert_tf.pretraining import masking

    for length, cap in [(512, 76), (512, 80), (128, 20), (128, 10)]:
        check(_published_config(max_seq_length=length, max_predictions_per_seq=cap, horovod=False))
        assert masking.predictions_for(length, 0.15, cap) == min(cap, max(1, int(round(length * 0.15))))
    assert masking.predictions_for(512, 0.15, 76) == 76


# --- every record checked as it is read --------------------------------------------------------------------


def write_records(path, count: int, vocab_size: int, length: int = 16, predictions: int = 4, bad=None) -> str:
    """`count` valid create_pretraining_data.py records (ids below `vocab_size`); `bad` = (record number, feature,
    values or None to leave the feature out) spoils one."""
    import tensorflow as tf

    rng = np.random.default_rng(len(str(path)))
    ints = lambda v: tf.train.Feature(int64_list=tf.train.Int64List(value=[int(x) for x in v]))
    with tf.io.TFRecordWriter(str(path)) as writer:
        for number in range(1, count + 1):
            ids = [2] + list(rng.integers(6, vocab_size, length - 2)) + [3]
            features = {"input_ids": ints(ids), "input_mask": ints([1] * length), "segment_ids": ints([0] * length),
                        "masked_lm_positions": ints([1, 2, 3, 0][:predictions]),
                        "masked_lm_ids": ints(ids[1:4] + [0]),
                        "masked_lm_weights": tf.train.Feature(float_list=tf.train.FloatList(value=[1, 1, 1, 0])),
                        "next_sentence_labels": ints([number % 2])}
            if bad is not None and bad[0] == number:
                if bad[2] is None:
                    del features[bad[1]]
                else:
                    features[bad[1]] = ints(bad[2])
            writer.write(tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString())
    return str(path)


@pytest.mark.parametrize("bad, problem", [
    ((8, "input_ids", [2] + [7] * 14 + [60]), "input_ids holds token id 60, outside the vocabulary of 60 ids"),
    ((6, "masked_lm_weights", None), "feature 'masked_lm_weights' holds 0 values, expected 4 (missing"),
    ((3, "segment_ids", [0] * 15), "feature 'segment_ids' holds 15 values, expected 16"),
    ((5, "masked_lm_positions", [1, 2, 16, 0]), "masked_lm_positions holds position 16, outside the sequence of 16"),
    ((7, "next_sentence_labels", [2]), "next_sentence_labels holds 2, expected 0 or 1")])
def test_each_record_checked_as_read(tmp_path, bad, problem):
    from bert_tf.pretraining import tfrecords

    path = write_records(tmp_path / "part.tfrecord", 9, 60, bad=bad)
    data = tfrecords.TFRecordData([path], 16, 4, 2, seed=0, vocab_size=60)
    data.next_sentence = True
    with pytest.raises(InputError) as error, tfrecords.naming_bad_records():
        list(data.eval_dataset(2)[0].as_numpy_iterator())
    assert str(error.value).startswith(f"{path}: record {bad[0]}: {problem}")
    if bad[1] == "input_ids":  # the training side reads through the same checks
        with pytest.raises(InputError) as error, tfrecords.naming_bad_records():
            list(data.epoch_dataset(0, 0, 4).as_numpy_iterator())
        assert str(error.value).startswith(f"{path}: record {bad[0]}: {problem}")


def test_truncated_file_named_with_its_record(tmp_path):
    from bert_tf.pretraining import tfrecords

    path = write_records(tmp_path / "cut.tfrecord", 6, 60)
    with open(path, "rb+") as f:
        f.truncate(len(open(path, "rb").read()) - 7)
    with pytest.raises(InputError, match=re.escape(f"{path}: record 6 is damaged or truncated (")):
        tfrecords.TFRecordData([path], 16, 4, 2, vocab_size=60)


# --- a run: head warm-up, evaluation every N steps, snapshots, their TF1 export; a bad record mid-run -----------


def _vocab_size(checkpoint: str) -> int:
    """The ids the checkpoint's vocab.txt spans: its line count (a repeated token's later line keeps its id)."""
    return len(open(os.path.join(checkpoint, "vocab.txt"), encoding="utf-8").read().splitlines())


def _record_run(checkpoint, tmp_path, name, **settings) -> PretrainingConfig:
    return PretrainingConfig(bert_model=checkpoint, output_dir=str(tmp_path / name), max_seq_length=16,
                             max_predictions_per_seq=4, train_batch_size=4, eval_batch_size=4, learning_rate=1e-3,
                             seed=3, tensorboard=False, verbose=False, **settings)


def google_tf1_pretraining_shapes(config: dict) -> dict:
    """The variables (name -> shape) Google's modeling.py and run_pretraining.py (get_masked_lm_output,
    get_next_sentence_output) create for `config` (a bert_config.json), read from their code."""
    h, inner, shapes = config["hidden_size"], config["intermediate_size"], {}
    shapes.update({"bert/embeddings/word_embeddings": [config["vocab_size"], h],
                   "bert/embeddings/token_type_embeddings": [config["type_vocab_size"], h],
                   "bert/embeddings/position_embeddings": [config["max_position_embeddings"], h],
                   "bert/embeddings/LayerNorm/beta": [h], "bert/embeddings/LayerNorm/gamma": [h],
                   "bert/pooler/dense/kernel": [h, h], "bert/pooler/dense/bias": [h]})
    for i in range(config["num_hidden_layers"]):
        layer = f"bert/encoder/layer_{i}/"
        for part in ("attention/self/query", "attention/self/key", "attention/self/value", "attention/output/dense"):
            shapes.update({layer + part + "/kernel": [h, h], layer + part + "/bias": [h]})
        shapes.update({layer + "intermediate/dense/kernel": [h, inner], layer + "intermediate/dense/bias": [inner],
                       layer + "output/dense/kernel": [inner, h], layer + "output/dense/bias": [h]})
        for norm in ("attention/output/LayerNorm/", "output/LayerNorm/"):
            shapes.update({layer + norm + "beta": [h], layer + norm + "gamma": [h]})
    shapes.update({"cls/predictions/transform/dense/kernel": [h, h], "cls/predictions/transform/dense/bias": [h],
                   "cls/predictions/transform/LayerNorm/beta": [h], "cls/predictions/transform/LayerNorm/gamma": [h],
                   "cls/predictions/output_bias": [config["vocab_size"]],
                   "cls/seq_relationship/output_weights": [2, h], "cls/seq_relationship/output_bias": [2],
                   "global_step": []})
    return shapes


def test_run_head_warmup_snapshots_tf1_export(tiny_checkpoint, tmp_path, capsys):
    """6 steps (4 of head warm-up) on TFRecords, evaluated every 3 steps on 1 held-out batch, snapshots every 2 steps
    (the last 2 kept); the warm-up leaves the encoder as it was; a snapshot exports as Google's TF1 names and
    shapes with its values."""
    import tensorflow as tf
    from safetensors.numpy import load_file

    from bert_tf.checkpoints import export
    from bert_tf.pretraining import run

    vocab = _vocab_size(tiny_checkpoint)
    (tmp_path / "train").mkdir()
    for part in "ab":
        write_records(tmp_path / "train" / f"{part}.tfrecord", 12, vocab)
    held = write_records(tmp_path / "held.tfrecord", 8, vocab)
    cfg = _record_run(tiny_checkpoint, tmp_path, "out", input_files=str(tmp_path / "train"), eval_files_dir=held,
                      num_train_steps=2, head_warmup_steps=4, eval_every_steps=3, max_eval_steps=1,
                      save_checkpoints_steps=2, keep_checkpoint_max=2, keep_checkpoints=True)
    run.train(cfg)
    out = tmp_path / "out"
    assert sorted(p.name for p in out.glob("model.ckpt-*")) == ["model.ckpt-4", "model.ckpt-6"]
    printed = capsys.readouterr().out
    assert "4 steps training the head alone (encoder frozen) at 0.001, then the whole model" in printed
    assert "masked_lm_accuracy" not in printed  # the key = value lines go to stderr, as TF1's logger
    history = [line.split(",") for line in (out / "history.csv").read_text().splitlines()]
    step, split = history[0].index("step"), history[0].index("split")
    assert [int(row[step]) for row in history[1:] if row[split] == "val"] == [3, 6]
    results = dict(line.split(" = ") for line in (out / "eval_results.txt").read_text().splitlines())
    assert list(results) == sorted(results) and results["global_step"] == "6"
    assert {"loss", "masked_lm_accuracy", "masked_lm_loss", "masked_lm_perplexity", "before_masked_lm_loss"} <= set(
        results)

    original = load_file(os.path.join(tiny_checkpoint, "model.safetensors"))
    warmed = load_file(str(out / "model.ckpt-4" / "model.safetensors"))  # the end of the head warm-up
    trained = load_file(str(out / "model" / "model.safetensors"))
    assert all(np.array_equal(warmed["bert." + k], v) for k, v in original.items())  # the encoder frozen
    key = "encoder.layer.1.output.dense.weight"
    assert not np.array_equal(trained["bert." + key], original[key])  # then trained
    head = "cls.predictions.transform.dense.weight"
    assert np.abs(warmed[head] - trained[head]).max() > 0

    snapshot = load_file(str(out / "model.ckpt-4" / "model.safetensors"))
    snapshot["cls.seq_relationship.weight"] = np.arange(64, dtype=np.float32).reshape(2, 32)  # a BertForPreTraining
    snapshot["cls.seq_relationship.bias"] = np.asarray([0.5, -0.5], np.float32)
    from safetensors.numpy import save_file
    save_file(snapshot, str(out / "model.ckpt-4" / "model.safetensors"))
    assert export.main(["--model_dir", str(out / "model.ckpt-4"), "--format", "tf1", "--output_dir",
                        str(tmp_path / "tf1")]) == 0
    bert_config = json.loads((tmp_path / "tf1" / "bert_config.json").read_text())
    reader = tf.train.load_checkpoint(str(tmp_path / "tf1"))
    assert reader.get_variable_to_shape_map() == google_tf1_pretraining_shapes(bert_config)
    assert reader.get_tensor("global_step") == 4
    for name, hf_key, transposed in [("cls/predictions/transform/dense/kernel",
                                      "cls.predictions.transform.dense.weight", True),
                                     ("cls/predictions/output_bias", "cls.predictions.bias", False),
                                     ("cls/predictions/transform/LayerNorm/gamma",
                                      "cls.predictions.transform.LayerNorm.weight", False),
                                     ("cls/seq_relationship/output_weights", "cls.seq_relationship.weight", False),
                                     ("cls/seq_relationship/output_bias", "cls.seq_relationship.bias", False),
                                     ("bert/encoder/layer_1/intermediate/dense/kernel",
                                      "bert.encoder.layer.1.intermediate.dense.weight", True),
                                     ("bert/embeddings/word_embeddings", "bert.embeddings.word_embeddings.weight",
                                      False)]:
        expected = snapshot[hf_key].T if transposed else snapshot[hf_key]
        np.testing.assert_array_equal(reader.get_tensor(name), expected, err_msg=name)
    assert (tmp_path / "tf1" / "vocab.txt").read_text() == open(os.path.join(tiny_checkpoint, "vocab.txt")).read()
    capsys.readouterr()
    export.export(str(out), "tf1", str(tmp_path / "final"))  # the run folder: its model/, without the NSP head
    final = tf.train.load_checkpoint(str(tmp_path / "final"))
    assert final.get_tensor("global_step") == 6 and "cls/seq_relationship/output_weights" not in (
        final.get_variable_to_shape_map())
    assert "the model has no next-sentence head" in capsys.readouterr().err


def test_bad_record_mid_run_keeps_the_saved_states(tiny_checkpoint, tmp_path, monkeypatch):
    from bert_tf.pretraining import run, tfrecords

    monkeypatch.setattr(tfrecords, "SHUFFLE_BUFFER", 1)  # read in file order, so the bad record comes mid-run
    vocab = _vocab_size(tiny_checkpoint)
    (tmp_path / "train").mkdir()
    bad = write_records(tmp_path / "train" / "a.tfrecord", 12, vocab, bad=(12, "input_ids", [2] * 15 + [vocab]))
    cfg = _record_run(tiny_checkpoint, tmp_path, "out", input_files=str(tmp_path / "train"), num_train_steps=3,
                      head_warmup_steps=0, do_eval=False, save_checkpoints_steps=2, keep_checkpoint_max=1)
    with pytest.raises(InputError) as error:  # in the third batch (records 9-12), after the state of step 2
        run.train(cfg)
    assert str(error.value) == (f"{bad}: record 12: input_ids holds token id {vocab}, outside the vocabulary of "
                                f"{vocab} ids (data made with another vocab.txt?)")
    out = tmp_path / "out"
    assert list((out / "checkpoints").glob("ckpt-*.state.json")) and list(out.glob("model.ckpt-*"))
    assert not (out / "model").exists() and not (out / "eval_results.txt").exists()
    assert not list(out.rglob("*.tmp*"))
