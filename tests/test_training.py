"""Schedules, optimizer groups (double_lr), frozen layers, loss masking and the training loop."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from bert_tf import models, optimization, checkpoints
from conftest import StepOutputs
from bert_tf.tokenization import WordPieceTokenizer
from bert_tf.training import Trainer, masked_sparse_ce_sum, validation_steps


def test_warmup_linear_decay_values():
    schedule = optimization.WarmupLinearDecay(1e-3, warmup_steps=10, total_steps=50)
    got = [float(schedule(s)) for s in (0, 5, 10, 30, 50, 60)]
    assert got == pytest.approx([0.0, 5e-4, 1e-3, 5e-4, 0.0, 0.0])


def test_epoch_exponential_decay_values():
    schedule = optimization.EpochExponentialDecay(1e-3, gamma=0.5, steps_per_epoch=4)
    got = [float(schedule(s)) for s in (0, 3, 4, 7, 8, 12)]
    assert got == pytest.approx([1e-3, 1e-3, 5e-4, 5e-4, 2.5e-4, 1.25e-4])


def test_masked_loss_ignores_minus_one():
    logits = tf.constant([[[2.0, 0.0], [0.0, 3.0], [9.0, -9.0]]])
    labels = tf.constant([[0, 1, -1]])
    expected = -np.log(np.exp(2) / (np.exp(2) + 1)) - np.log(np.exp(3) / (np.exp(3) + 1))
    assert float(masked_sparse_ce_sum(labels, logits)) == pytest.approx(expected, rel=1e-6)


def test_validation_steps_are_evenly_spaced():
    assert validation_steps(10, 1) == {10}
    assert validation_steps(10, 2) == {5, 10}
    assert validation_steps(10, 3) == {4, 7, 10}
    assert validation_steps(2, 5) == {1, 2}
    assert validation_steps(10, 0) == set()


@pytest.fixture(scope="module")
def small_checkpoint(tiny_checkpoint, tmp_path_factory) -> str:
    """A smaller random BERT (1 layer, hidden 16; the tiny checkpoint's vocabulary) for the tests of the loop's
    mechanics; the frozen-layer and the bfloat16 learning tests use the 2-layer tiny checkpoint."""
    from pathlib import Path

    from checkpoint_factory import make_random_hf_checkpoint

    vocab = (Path(tiny_checkpoint) / "vocab.txt").read_text(encoding="utf-8").split("\n")[:-1]
    return make_random_hf_checkpoint(str(tmp_path_factory.mktemp("small_bert")), vocab, hidden=16, layers=1,
                                     heads=2, intermediate=32, seed=1)


def _task(tiny_checkpoint, freeze=0):
    checkpoint = checkpoints.find_checkpoint(tiny_checkpoint)
    tokenizer = WordPieceTokenizer.from_model_dir(tiny_checkpoint)
    task = checkpoints.build_task_model(checkpoint, tokenizer, ["O", "B-X", "I-X"], "token", 0.0, encoder_dropout=0.0)
    frozen = models.freeze_layers(task.backbone, freeze, "freeze_layers")
    return task, frozen


def _batch(seed=0, batch=4, length=12, labels=3):
    rng = np.random.default_rng(seed)
    token_ids = rng.integers(5, 30, size=(batch, length)).astype(np.int32)
    return {"token_ids": token_ids, "padding_mask": np.ones_like(token_ids), "segment_ids": np.zeros_like(token_ids),
            "labels": rng.integers(0, labels, size=(batch, length)).astype(np.int32)}


def _one_epoch(trainer, batches, lr_log=None):
    def make(epoch, first_step):
        data = tf.data.Dataset.from_tensor_slices({k: np.stack([b[k] for b in batches]) for k in batches[0]})
        return data.skip(first_step), len(batches)

    def on_outputs(_):
        if lr_log is not None:
            lr_log.append(optimization.current_learning_rate(trainer.optimizer))

    return trainer.fit(make, epochs=1, outputs=StepOutputs(on_outputs), validations_per_epoch=0)


def test_double_lr_moves_encoder_ten_times_less(small_checkpoint):
    task, _ = _task(small_checkpoint)
    lr = 1e-3
    optimizer = optimization.make_optimizer(
        "adamw", lr, 0.0, multiplier_of=lambda v: 1.0 if models.is_head_variable(v) else 0.1)
    trainer = Trainer(task.model, optimizer, tf.distribute.get_strategy(), log_every=1, verbose=False)
    before = {v.path: v.numpy().copy() for v in task.model.trainable_variables}
    _one_epoch(trainer, [_batch()])
    # Adam's first step moves every weight with a non-zero gradient by lr * g/(|g|+eps) ~ lr.
    head = [np.abs(v.numpy() - before[v.path]).max() for v in task.model.trainable_variables
            if models.is_head_variable(v)]
    encoder = [np.abs(v.numpy() - before[v.path]).max() for v in task.model.trainable_variables
               if not models.is_head_variable(v)]
    assert max(head) == pytest.approx(lr, rel=0.02)
    assert max(encoder) == pytest.approx(lr / 10, rel=0.02)


def test_weight_decay_skips_layernorm_and_bias(small_checkpoint):
    task, _ = _task(small_checkpoint)
    optimizer = optimization.make_optimizer("adamw", 1e-2, 0.5)
    optimizer.build(task.model.trainable_variables)
    decayed = {v.path for v in task.model.trainable_variables if optimizer._use_weight_decay(v)}
    assert "classifier/kernel" in decayed
    assert not any(p.endswith(("bias", "gamma", "beta")) for p in decayed)
    assert any("layer_norm" in v.path for v in task.model.trainable_variables)


def _numpy_adamw(value, grads, lr, wd, multiplier, decay, beta_1=0.9, beta_2=0.999, eps=1e-6):
    """Decoupled-decay Adam by hand (Keras AdamW semantics), one update per gradient."""
    m = np.zeros_like(value)
    v = np.zeros_like(value)
    for t, g in enumerate(grads, start=1):
        step_lr = lr * multiplier
        if decay:
            value = value - value * wd * step_lr
        m = beta_1 * m + (1 - beta_1) * g
        v = beta_2 * v + (1 - beta_2) * g * g
        alpha = step_lr * np.sqrt(1 - beta_2 ** t) / (1 - beta_1 ** t)
        value = value - alpha * m / (np.sqrt(v) + eps)
    return value


@pytest.mark.parametrize("strategy_name", ["default", "mirrored"])
def test_fused_adamw_matches_hand_computed_adamw(strategy_name):
    """The fused-kernel AdamW gives Keras AdamW's numbers: decay (skipped for biases), multipliers, moments."""
    import keras

    strategy = tf.distribute.get_strategy() if strategy_name == "default" else tf.distribute.MirroredStrategy(["/cpu:0"])
    rng = np.random.default_rng(3)
    init = {"kernel": rng.normal(size=(5, 4)).astype(np.float32), "bias": rng.normal(size=(4,)).astype(np.float32)}
    grads = {k: [rng.normal(size=x.shape).astype(np.float32) for _ in range(4)] for k, x in init.items()}
    with strategy.scope():
        variables = [keras.Variable(init["kernel"], name="kernel"), keras.Variable(init["bias"], name="bias")]
        fused = optimization.make_optimizer("adamw", 0.05, 0.3, multiplier_of=lambda v: 0.5 if v.name == "bias" else 1.0)
        fused.build(variables)
        reference = [keras.Variable(init["kernel"], name="kernel"), keras.Variable(init["bias"], name="bias")]
        keras_adamw = keras.optimizers.AdamW(learning_rate=0.05, weight_decay=0.3, epsilon=1e-6)
        keras_adamw.exclude_from_weight_decay(var_names=["bias"])
        keras_adamw.build(reference)

    @tf.function
    def step(g_kernel, g_bias):
        def replica():
            fused.apply_gradients(zip([g_kernel, g_bias], variables))
        strategy.run(replica)

    for t in range(4):
        step(tf.constant(grads["kernel"][t]), tf.constant(grads["bias"][t]))
        if strategy_name == "default":
            keras_adamw.apply_gradients(zip([grads["kernel"][t], grads["bias"][t]], reference))
    want_kernel = _numpy_adamw(init["kernel"].astype(np.float64), grads["kernel"], 0.05, 0.3, 1.0, True)
    want_bias = _numpy_adamw(init["bias"].astype(np.float64), grads["bias"], 0.05, 0.3, 0.5, False)
    np.testing.assert_allclose(variables[0].numpy(), want_kernel, rtol=0, atol=2e-6)
    np.testing.assert_allclose(variables[1].numpy(), want_bias, rtol=0, atol=2e-6)
    assert np.abs(variables[0].numpy() - init["kernel"]).max() > 0.1  # it really moved
    if strategy_name == "default":  # and Keras' own AdamW on the decayed kernel, to a few float32 ulps
        np.testing.assert_allclose(variables[0].numpy(), reference[0].numpy(), rtol=0, atol=2e-6)


@pytest.mark.parametrize("freeze,frozen_prefixes,trained_prefix", [
    (1, ("token_embedding", "position_embedding", "segment_embedding", "embeddings_layer_norm",
         "transformer_layer_0/"), "transformer_layer_1/"),
    (-1, ("token_embedding", "embeddings_layer_norm"), "transformer_layer_0/"),
])
def test_frozen_weights_do_not_change(tiny_checkpoint, freeze, frozen_prefixes, trained_prefix):
    task, _ = _task(tiny_checkpoint, freeze)
    before = {v.path: v.numpy().copy() for v in task.model.weights}
    trainer = Trainer(task.model, optimization.make_optimizer("adamw", 1e-2, 0.01), tf.distribute.get_strategy(),
                      verbose=False)
    _one_epoch(trainer, [_batch(0), _batch(1)])
    after = {v.path: v.numpy() for v in task.model.weights}
    for path in before:
        changed = not np.array_equal(before[path], after[path])
        if path.startswith(frozen_prefixes):
            assert not changed, path
        if path.startswith(trained_prefix) and path.endswith("kernel"):
            assert changed, path


def test_freeze_layers_rejects_out_of_range(tiny_checkpoint):
    from bert_tf.errors import InputError

    task, _ = _task(tiny_checkpoint)
    with pytest.raises(InputError, match="freeze_layers=5"):
        models.freeze_layers(task.backbone, 5, "freeze_layers")


@pytest.mark.parametrize("linear", [True, False])
def test_observed_learning_rates_follow_the_schedule(small_checkpoint, linear):
    task, _ = _task(small_checkpoint)
    steps = 5
    schedule = (optimization.WarmupLinearDecay(1e-3, 2, 2 * steps) if linear
                else optimization.EpochExponentialDecay(1e-3, 0.5, steps))
    trainer = Trainer(task.model, optimization.make_optimizer("adamw", schedule, 0.0),
                      tf.distribute.get_strategy(), log_every=1, verbose=False)
    observed = []
    for _ in range(2):
        _one_epoch(trainer, [_batch(i) for i in range(steps)], observed)
    # the rate the optimizer will use for the next step, after steps 1..10
    expected = [float(schedule(s)) for s in range(1, 2 * steps + 1)]
    assert observed == pytest.approx(expected)
    if linear:
        assert observed[-1] == 0.0 and max(observed) == pytest.approx(1e-3)
    else:
        assert observed[4:9] == pytest.approx([5e-4] * 5)


def test_nan_loss_stops_with_the_step(small_checkpoint):
    from bert_tf.errors import TrainingDiverged

    task, _ = _task(small_checkpoint)
    trainer = Trainer(task.model, optimization.make_optimizer("adamw", 1e-3, 0.0), tf.distribute.get_strategy(),
                      log_every=1, verbose=False)
    _one_epoch(trainer, [_batch(0)])
    task.model.get_layer("classifier").kernel.assign(np.full(task.model.get_layer("classifier").kernel.shape,
                                                             np.nan, np.float32))
    with pytest.raises(TrainingDiverged, match="at step 2"):
        _one_epoch(trainer, [_batch(1)])


def test_xla_step_matches_the_plain_step(small_checkpoint):
    """--use_xla compiles the step (jit_compile=True, set explicitly) and computes the same loss."""
    losses = []
    for use_xla in (False, True):
        tf.keras.utils.set_random_seed(0)
        task, _ = _task(small_checkpoint)
        trainer = Trainer(task.model, optimization.make_optimizer("adamw", 1e-3, 0.01), tf.distribute.get_strategy(),
                          use_xla=use_xla, log_every=1, verbose=False)
        history = _one_epoch(trainer, [_batch(0), _batch(1), _batch(2)])
        losses.append(history[-1]["loss"])
        assert trainer._forward_backward.function_spec is not None
        assert trainer._forward_backward._jit_compile == use_xla
    assert losses[1] == pytest.approx(losses[0], rel=1e-4)


def test_lamb_optimizer_trains_and_skips_decay_on_layernorm(small_checkpoint):
    task, _ = _task(small_checkpoint)
    optimizer = optimization.make_optimizer("lamb", 1e-3, 0.01)
    trainer = Trainer(task.model, optimizer, tf.distribute.get_strategy(), log_every=1, verbose=False)
    before = [v.numpy().copy() for v in task.model.trainable_variables]
    history = _one_epoch(trainer, [_batch(0), _batch(1)])
    assert np.isfinite(history[-1]["loss"])
    assert any(not np.array_equal(b, v.numpy()) for b, v in zip(before, task.model.trainable_variables))
    assert not any(optimizer._use_weight_decay(v) for v in task.model.trainable_variables
                   if v.path.endswith(("gamma", "beta", "bias")))


# ----- precision (--use_amp, --amp_dtype) -----------------------------------------------------------------------

@pytest.mark.parametrize("use_amp,amp_dtype,gpus,cpu_bf16,policy,loss_scale,says", [
    (False, "auto", [(9, 0)], "amx_bf16", "float32", False, "float32"),
    (True, "auto", [(9, 0)], None, "mixed_float16", True, "loss scaling (GPU)"),
    (True, "bfloat16", [(8, 0), (9, 0)], None, "mixed_bfloat16", False, "(GPU)"),
    (True, "bfloat16", [(9, 0), (7, 0)], None, "mixed_float16", True, "a GPU here has 7.0"),
    (True, "float16", [(7, 5)], None, "mixed_float16", True, "loss scaling"),
    (True, "auto", [], "amx_bf16", "mixed_bfloat16", False, "CPU with AMX-BF16"),
    (True, "auto", [], "avx512_bf16", "mixed_bfloat16", False, "CPU with AVX512-BF16"),
    (True, "auto", [], None, "float32", False, "no native bfloat16"),
    (True, "bfloat16", [], None, "mixed_bfloat16", False, "likely slower"),
    (True, "float16", [], "amx_bf16", "float32", False, "float16 needs a GPU"),
])
def test_precision_follows_the_hardware(use_amp, amp_dtype, gpus, cpu_bf16, policy, loss_scale, says):
    from bert_tf.distribution import choose_precision

    got_policy, words, got_scale = choose_precision(use_amp, amp_dtype, gpus, cpu_bf16)
    assert (got_policy, got_scale) == (policy, loss_scale)
    assert words.startswith(policy) and says in words


def test_unknown_amp_dtype_is_an_input_error():
    from bert_tf.distribution import choose_precision
    from bert_tf.errors import InputError

    with pytest.raises(InputError, match="--amp_dtype=half"):
        choose_precision(True, "half", [], None)


@pytest.mark.parametrize("flags_line,expected", [
    ("flags\t\t: fpu avx2 avx512f avx512_bf16 amx_tile amx_bf16 amx_int8\n", "amx_bf16"),
    ("flags\t\t: fpu avx2 avx512f avx512_bf16\n", "avx512_bf16"),
    ("flags\t\t: fpu avx2 avx512f\n", None),
])
def test_cpu_bf16_support_reads_the_cpu_flags(tmp_path, flags_line, expected):
    from bert_tf.distribution import cpu_bf16_support

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Some CPU\n" + flags_line + "\nprocessor\t: 1\n")
    assert cpu_bf16_support(str(cpuinfo)) == expected
    assert cpu_bf16_support(str(tmp_path / "absent")) is None


def _mean_loss(model, batch) -> float:
    features = {k: batch[k] for k in ("token_ids", "padding_mask", "segment_ids")}
    labels = tf.constant(batch["labels"])
    return float(masked_sparse_ce_sum(labels, model(features, training=False))) / labels.shape.num_elements()


def test_bfloat16_training_learns_like_float32(tiny_checkpoint):
    """Under mixed_bfloat16 the encoder computes in bfloat16, variables stay float32, and training on a
    batch lowers its loss about as much as float32 training does."""
    import keras

    losses = {}
    try:
        for policy in ("float32", "mixed_bfloat16"):
            keras.mixed_precision.set_global_policy(policy)
            tf.keras.utils.set_random_seed(0)
            task, _ = _task(tiny_checkpoint)
            trainer = Trainer(task.model, optimization.make_optimizer("adamw", 3e-3, 0.01),
                              tf.distribute.get_strategy(), log_every=1, verbose=False)
            before = _mean_loss(task.model, _batch(0))
            _one_epoch(trainer, [_batch(0)] * 12)
            losses[policy] = (before, _mean_loss(task.model, _batch(0)))
            dense_dtypes = {layer.compute_dtype for layer in task.backbone._flatten_layers()
                            if isinstance(layer, keras.layers.Dense)}
            assert dense_dtypes == {"float32" if policy == "float32" else "bfloat16"}
            assert {v.dtype for v in task.model.trainable_variables} == {"float32"}
    finally:
        keras.mixed_precision.set_global_policy("float32")
    for before, after in losses.values():
        assert after < 0.8 * before
    assert losses["mixed_bfloat16"][0] == pytest.approx(losses["float32"][0], rel=0.02)
    assert losses["mixed_bfloat16"][1] == pytest.approx(losses["float32"][1], rel=0.1)


def test_one_replica_iterates_the_dataset_itself_without_autotuning(small_checkpoint):
    """One local replica: batches go in as they are (no distributed iterator), and tf.data's autotuning is
    off, whose thread can hold up an iterator's deletion for up to a minute in TF 2.21."""
    task, _ = _task(small_checkpoint)
    trainer = Trainer(task.model, None, tf.distribute.OneDeviceStrategy("/cpu:0"), verbose=False)
    dataset = tf.data.Dataset.from_tensors(_batch(0)).repeat(2)
    given = trainer.distribute(dataset)
    assert isinstance(given, tf.data.Dataset)
    assert given.options().autotune.enabled is False
    seen = []
    trainer.predict(dataset, 2, lambda out: seen.append(out["logits"].shape))
    assert seen == [(4, 12, 3), (4, 12, 3)]


def test_progress_bars_say_validate_during_training_and_predict_after(small_checkpoint, capsys):
    task, _ = _task(small_checkpoint)
    trainer = Trainer(task.model, optimization.make_optimizer("adamw", 1e-3, 0.0), tf.distribute.get_strategy(),
                      log_every=1, verbose=True)
    trainer.progress_min_batches = 1
    batches = [_batch(seed) for seed in range(3)]
    stacked = {k: np.stack([b[k] for b in batches]) for k in batches[0]}

    def evaluate():
        trainer.predict(tf.data.Dataset.from_tensor_slices(stacked), len(batches))
        return {"f1": 0.5}

    trainer.fit(lambda epoch, first: (tf.data.Dataset.from_tensor_slices(stacked), len(batches)), epochs=1,
                validate=evaluate, validations_per_epoch=1)
    trainer.predict(tf.data.Dataset.from_tensor_slices(stacked), len(batches))
    bars = [line.split(" [")[0] for line in capsys.readouterr().out.splitlines() if "3/3 batches" in line]
    assert bars == ["  validate", "predict"]
