"""NVIDIA's pretraining recipe: its LAMB update and learning-rate schedule (against numpy transcriptions of NVIDIA's
TF1 optimization.py written here, independent of bert_tf.optimization), the --horovod rate scaling, the published
flags, the run table's claims, and Google's cap on masked positions."""

from __future__ import annotations

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
