"""One custom tf.distribute training loop for both tasks, with Keras callbacks driven by the loop.

Keras 3 `Model.fit` cannot run under MultiWorkerMirroredStrategy, so the step is a `tf.function`
that calls `strategy.run`. Per step and replica: the forward/backward pass (XLA-compiled with
`--use_xla`), a sum all-reduce of the gradients, division by the global number of labelled
positions (per loss term when a task has several, e.g. masked LM + next-sentence prediction), clipping to
a global norm, and the update (loss scaling with `--use_amp` on a GPU).
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import time
from typing import Any, Callable, Dict, Iterable, List, Optional, Protocol, Sequence, Tuple

import keras
import numpy as np
import tensorflow as tf

from bert_tf.batch_format import FEATURE_KEYS, IGNORE_LABEL, LABELS, PADDING_MASK
from bert_tf import lifecycle, reports
from bert_tf.distribution import untune_device_pipelines, untuned_options
from bert_tf.errors import TrainingDiverged, TrainingInterrupted
from bert_tf.optimization import current_learning_rate
from bert_tf.progress import ProgressBar
from bert_tf.resume import TrainingCheckpointer, pack_arrays, unpack_arrays

EpochDatasetFn = Callable[[int, int], Tuple[tf.data.Dataset, int]]


class TrainingOutputs(Protocol):
    """What the loop needs from a task for its training metrics: every step's outputs in, the epoch's metrics
    out, and what it holds so far saved and restored with the training state."""

    def add(self, outputs: Dict[str, np.ndarray]) -> None:
        """Take one training step's outputs (predictions and the passthrough keys), as numpy arrays."""

    def result(self) -> Dict[str, float]:
        """The epoch's training metrics; forgets the epoch's outputs."""

    def get_state(self) -> Dict[str, np.ndarray]:
        """The outputs held so far, for a checkpoint."""

    def set_state(self, arrays: Dict[str, np.ndarray]) -> None:
        """Restore what get_state returned."""

    # Optional: `running() -> Dict[str, float]`, the epoch's metrics so far, shown on the progress line.


def masked_sparse_ce_sum(labels: tf.Tensor, logits: tf.Tensor, class_weights: Optional[tf.Tensor] = None) -> tf.Tensor:
    """Sum of cross-entropies over positions whose label is not IGNORE_LABEL (each times its label's weight)."""
    logits = tf.cast(logits, tf.float32)
    mask = tf.not_equal(labels, IGNORE_LABEL)
    safe_labels = tf.where(mask, labels, tf.zeros_like(labels))
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=safe_labels, logits=logits)
    if class_weights is not None:
        ce = ce * tf.gather(class_weights, safe_labels)
    return tf.reduce_sum(tf.where(mask, ce, tf.zeros_like(ce)))


def count_labelled(labels: tf.Tensor, class_weights: Optional[tf.Tensor] = None) -> tf.Tensor:
    """Number of positions that carry a label (float32), or the sum of their labels' weights: the loss's
    denominator, so a weighted loss is the weighted mean and equal weights give the plain mean."""
    mask = tf.not_equal(labels, IGNORE_LABEL)
    if class_weights is None:
        return tf.reduce_sum(tf.cast(mask, tf.float32))
    weights = tf.gather(class_weights, tf.where(mask, labels, tf.zeros_like(labels)))
    return tf.reduce_sum(tf.where(mask, weights, tf.zeros_like(weights)))


@dataclasses.dataclass(frozen=True)
class Loss:
    """One cross-entropy term of the training objective: the mean over the batch's labelled positions of the
    model output `output` (a key of the model's output dict; None for a model of one output) against the batch's
    `labels`. The step reports it as `name` and its argmax predictions as `preds`."""

    name: str
    output: Optional[str]
    labels: str
    preds: str


SINGLE_LOSS = (Loss("loss", None, LABELS, "preds"),)


class Trainer:
    """Trains and runs a Keras model under any tf.distribute strategy with a custom loop.

    The objective is the sum of the `losses` (default: the single output against LABELS); with several, each
    step also reports every term under its name, and each term's mean is over its own labelled positions of the
    whole batch (all micro-batches and replicas), so accumulation stays exact term by term.
    """

    def __init__(
        self,
        model: keras.Model,
        optimizer: Optional[keras.optimizers.Optimizer],
        strategy: tf.distribute.Strategy,
        use_xla: bool = False,
        loss_scale: bool = False,
        clip_norm: float = 1.0,
        passthrough_keys: Sequence[str] = (LABELS,),
        log_every: int = 10,
        verbose: bool = True,
        class_weights: Optional[Sequence[float]] = None,
        feature_keys: Sequence[str] = FEATURE_KEYS,
        accumulation_steps: int = 1,
        losses: Sequence[Loss] = SINGLE_LOSS,
    ):
        self.model = model
        self.losses = tuple(losses)
        if len(self.losses) > 1 and (class_weights is not None or any(t.output is None for t in self.losses)):
            raise ValueError("several losses need a model with named outputs and no class weights")
        # Scalars reported per step (the total and, with several terms, each term).
        self._loss_keys = ("loss",) + (tuple(t.name for t in self.losses) if len(self.losses) > 1 else ())
        # The batch keys the model takes as inputs (a masked-LM model also takes the masked positions).
        self.feature_keys = tuple(feature_keys)
        # Each replica's batch is split into this many micro-batches whose gradients are summed before one
        # update (exact: the loss is divided by the labelled positions of the whole batch).
        if accumulation_steps < 1:
            raise ValueError(f"accumulation_steps must be at least 1, got {accumulation_steps}")
        self.accumulation_steps = int(accumulation_steps)
        # Per-label loss weights (None: all 1); the loss is the weighted mean over labelled positions.
        self.class_weights = None if class_weights is None else tf.constant(np.asarray(class_weights), tf.float32)
        self.strategy = strategy
        self.use_xla = use_xla
        self.clip_norm = clip_norm
        self.passthrough_keys = tuple(passthrough_keys)
        self.log_every = max(1, log_every)
        self.verbose = verbose
        self.progress_min_batches = 20  # no bar for short validations inside an epoch's bar
        self._validating = False
        self.global_step = 0
        # Called with the global step after every training step (before a checkpoint due at that step is
        # saved): a seam for tests that kill or interrupt a run at an exact step.
        self.step_hooks: List[Callable[[int], None]] = []
        self.history: List[Dict[str, Any]] = []
        self.variables = list(model.trainable_variables)
        self.optimizer = optimizer  # None: prediction only
        if optimizer is not None:
            with strategy.scope():
                if loss_scale:
                    self.optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
                self.optimizer.build(self.variables)
        self._loss_scale = loss_scale
        # No AutoGraph where the code has no tensor-dependent Python control flow: converting the step's call tree
        # costs seconds at every start and changes nothing in the graph.
        self._forward_backward = tf.function(self._forward_backward_fn, jit_compile=use_xla, reduce_retracing=True,
                                             autograph=False)
        self._forward = tf.function(self._forward_fn, jit_compile=use_xla, reduce_retracing=True, autograph=False)
        self._compiled: Dict[Tuple[str, str], Callable] = {}

    # ----- compiled pieces -------------------------------------------------------------------
    def _term_logits(self, outputs) -> List[tf.Tensor]:
        """The logits of every loss term from the model's output (one tensor, or a dict by output name)."""
        return [outputs[t.output] for t in self.losses] if isinstance(outputs, dict) else [outputs]

    def _forward_backward_fn(self, features, labels, multipliers):
        """(per-term loss sums, gradients of sum_i loss_sum_i * multipliers_i, per-term argmax predictions)."""
        with tf.GradientTape() as tape:
            logits = self._term_logits(self.model(features, training=True))
            loss_sums = [masked_sparse_ce_sum(labels[0], logits[0], self.class_weights)]
            loss_sums += [masked_sparse_ce_sum(y, x) for y, x in zip(labels[1:], logits[1:])]
            objective = loss_sums[0] * multipliers[0]
            for loss_sum, multiplier in zip(loss_sums[1:], multipliers[1:]):
                objective += loss_sum * multiplier
        # Dense gradients: Keras' Adam mis-handles embedding IndexedSlices with repeated ids
        # (it sums squares of the duplicates), and all-reduce needs dense tensors anyway.
        grads = [tf.convert_to_tensor(g) for g in tape.gradient(objective, self.variables)]
        preds = [tf.argmax(x, axis=-1, output_type=tf.int32) for x in logits]
        return loss_sums, grads, preds

    def _forward_fn(self, features):
        return self.model(features, training=False)

    def _accumulated_forward_backward(self, features, labels, multipliers):
        """_forward_backward over `accumulation_steps` equal micro-batches of the replica's batch, gradients and
        loss sums added up: one update's worth, with activations of only one micro-batch alive at a time."""
        k = self.accumulation_steps

        def micro(t):
            return tf.reshape(t, tf.concat([[k, tf.shape(t)[0] // k], tf.shape(t)[1:]], axis=0))

        features, labels = {n: micro(t) for n, t in features.items()}, [micro(t) for t in labels]
        grads = [tf.zeros(v.shape, tf.float32) for v in self.variables]
        loss_sums = [tf.zeros([], tf.float32) for _ in labels]
        preds = [tf.TensorArray(tf.int32, size=k, infer_shape=False) for _ in labels]
        for i in tf.range(k):
            part_losses, part_grads, part_preds = self._forward_backward(
                {n: t[i] for n, t in features.items()}, [t[i] for t in labels], multipliers)
            grads = [a + tf.cast(g, tf.float32) for a, g in zip(grads, part_grads)]
            loss_sums = [a + tf.cast(x, tf.float32) for a, x in zip(loss_sums, part_losses)]
            preds = [array.write(i, x) for array, x in zip(preds, part_preds)]
        return loss_sums, grads, [array.concat() for array in preds]

    def _replica_train_step(self, batch):
        ctx = tf.distribute.get_replica_context()
        features = {k: batch[k] for k in self.feature_keys}
        labels = [batch[t.labels] for t in self.losses]
        counts = [count_labelled(labels[0], self.class_weights)] + [count_labelled(y) for y in labels[1:]]
        global_counts = [tf.maximum(ctx.all_reduce(tf.distribute.ReduceOp.SUM, c), 1.0) for c in counts]
        scale = tf.cast(self.optimizer.dynamic_scale, tf.float32) if self._loss_scale else tf.constant(1.0)
        step = self._forward_backward if self.accumulation_steps == 1 else self._accumulated_forward_backward
        loss_sums, grads, preds = step(features, labels, [scale / c for c in global_counts])
        grads = ctx.all_reduce(tf.distribute.ReduceOp.SUM, [tf.cast(g, tf.float32) for g in grads])
        losses = [ctx.all_reduce(tf.distribute.ReduceOp.SUM, x) / c for x, c in zip(loss_sums, global_counts)]
        grads, _ = tf.clip_by_global_norm(grads, self.clip_norm * scale)
        self.optimizer.apply_gradients(zip(grads, self.variables))
        out = {"loss": losses[0]}
        for loss in losses[1:]:
            out["loss"] += loss
        if len(self.losses) > 1:
            out.update({t.name: loss for t, loss in zip(self.losses, losses)})
        out.update({t.preds: p for t, p in zip(self.losses, preds)})
        out.update({k: batch[k] for k in self.passthrough_keys if k in batch})
        return out

    def _distributed_train_step(self, batch):
        out = self.strategy.run(self._replica_train_step, args=(batch,))
        result = {key: self.strategy.experimental_local_results(out[key])[0] for key in self._loss_keys}
        for key, value in out.items():
            if key not in self._loss_keys:
                result[key] = self.strategy.gather(value, axis=0)
        return result

    def _replica_predict_step(self, batch):
        features = {k: batch[k] for k in self.feature_keys}
        outputs = self._forward(features)
        if isinstance(outputs, dict):  # a model of several outputs: each under its name
            out = {k: tf.cast(v, tf.float32) for k, v in outputs.items()}
        else:
            out = {"logits": tf.cast(outputs, tf.float32)}
        out.update({k: batch[k] for k in batch if k not in self.feature_keys})
        return out

    def _distributed_predict_step(self, batch):
        out = self.strategy.run(self._replica_predict_step, args=(batch,))
        return {key: self.strategy.gather(value, axis=0) for key, value in out.items()}

    def _step_function(self, kind: str, element_spec) -> Callable:
        """The compiled train or predict step for batches of `element_spec` (traced once per spec).

        A fixed signature with unknown batch and sequence dimensions means one graph whatever the
        order of batch shapes, so a resumed run computes exactly what an uninterrupted one does.
        """
        key = (kind, repr(element_spec))
        if key not in self._compiled:
            fn = self._distributed_train_step if kind == "train" else self._distributed_predict_step
            # AutoGraph only for the accumulation loop (a `for` over tf.range)
            autograph = kind == "train" and self.accumulation_steps > 1
            self._compiled[key] = tf.function(fn, input_signature=[element_spec], autograph=autograph)
        return self._compiled[key]

    # ----- host loops --------------------------------------------------------------------------
    def distribute(self, dataset: tf.data.Dataset) -> Iterable:
        """Split a dataset of global batches across the strategy's replicas (one replica: the dataset as is).

        tf.data's autotuning is off: our pipelines set their own parallelism, and in TF 2.21 deleting
        an iterator can block until the autotuning thread next wakes up, on a period that doubles up to
        a minute (measured: 16 to 58 s lost after a prediction pass or an epoch). A single local
        replica also skips the distributed iterator; with several, its per-device pipelines get
        autotuning turned off too (distribution.untune_device_pipelines).
        """
        options = untuned_options()
        if self.strategy.num_replicas_in_sync == 1 and not isinstance(
                self.strategy, tf.distribute.MultiWorkerMirroredStrategy):
            return dataset.with_options(options)
        untune_device_pipelines()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        return self.strategy.experimental_distribute_dataset(dataset.with_options(options))

    def predict(
        self,
        dataset: tf.data.Dataset,
        num_batches: Optional[int] = None,
        on_batch: Optional[Callable[[Dict[str, np.ndarray]], None]] = None,
        description: Optional[str] = None,
    ) -> None:
        """Run the model over `dataset`, handing each batch's outputs (numpy) to `on_batch`; the progress
        bar says `description` (default: "validate" during training, else "predict")."""
        if description is None:
            description = "  validate" if self._validating else "predict"
        show = self.verbose and num_batches is not None and num_batches >= self.progress_min_batches
        progbar = ProgressBar(num_batches, description, unit="batch") if show else None
        distributed = self.distribute(dataset)
        predict_step = self._step_function("predict", distributed.element_spec)
        iterator = iter(distributed)
        i = 0
        while num_batches is None or i < num_batches:  # never ask past a known end (see fit)
            batch = next(iterator, None)
            if batch is None:
                break
            out = {k: v.numpy() for k, v in predict_step(batch).items()}
            if on_batch is not None:
                on_batch(out)
            i += 1
            if progbar is not None:
                progbar.update(i)

    def fit(
        self,
        make_epoch_dataset: EpochDatasetFn,
        *,
        epochs: int,
        validate: Optional[Callable[[], Dict[str, float]]] = None,
        outputs: Optional[TrainingOutputs] = None,
        validations_per_epoch: int = 1,
        callbacks: Sequence[keras.callbacks.Callback] = (),
        checkpointer: Optional[TrainingCheckpointer] = None,
        save_every_steps: int = 0,
        validate_every_steps: int = 0,
    ) -> List[Dict[str, Any]]:
        """Train for `epochs`, validating `validations_per_epoch` times per epoch (or, with `validate_every_steps`,
        every that many global steps and after the last); returns history rows.

        `make_epoch_dataset(epoch, first_step)` gives that epoch's dataset of global batches starting at
        `first_step` and the epoch's full length in batches. `validate()` returns the validation metrics.
        `outputs` receives each step's predictions (with the passthrough keys) and gives the epoch's
        training metrics. With a `checkpointer`, the run resumes from its `resume_state`, and the full state
        is saved every `save_every_steps` steps, at the end of every epoch and on SIGTERM.
        """
        loop = _LoopState(epochs)
        self.model.stop_training = False
        cb = keras.callbacks.CallbackList(list(callbacks), model=self.model)
        if checkpointer is not None and checkpointer.resume_state is not None:
            self._resume(checkpointer, loop, outputs, callbacks)
        self._stop_signal = False
        with lifecycle.on_sigterm(self._request_stop):
            cb.on_train_begin()
            while loop.epoch < epochs and not loop.finished:
                self._run_epoch(loop, _Epoch(make_epoch_dataset, validate, outputs, validations_per_epoch, cb,
                                             callbacks, checkpointer, save_every_steps, validate_every_steps))
            cb.on_train_end()
        if self._stop_signal:  # SIGTERM during the last epoch's end: its state is saved; stop as asked
            raise TrainingInterrupted(self.global_step, checkpointer is not None)
        return self.history

    def _request_stop(self) -> None:
        """SIGTERM while training: save the training state after the current step, then stop."""
        self._stop_signal = True
        print("\nSIGTERM received: saving the training state after this step", file=sys.stderr, flush=True)

    def _run_epoch(self, loop: "_LoopState", run: "_Epoch") -> None:
        epoch, first = loop.epoch, loop.step_in_epoch
        lifecycle.enter_phase("train")
        dataset, num_batches = run.make_epoch_dataset(epoch, first)
        per_epoch = run.validations_per_epoch if run.validate and not run.validate_every_steps else 0
        val_steps = validation_steps(num_batches, per_epoch)
        run.cb.on_epoch_begin(epoch)
        if self.verbose:
            print(f"Epoch {epoch + 1}/{loop.epochs}" + (f" (resuming at step {first + 1})" if first else ""))
        progbar = ProgressBar(num_batches, "  train", unit="step") if self.verbose else None
        started, pending = time.time(), []
        distributed = self.distribute(dataset)
        train_step = self._step_function("train", distributed.element_spec)
        iterator = iter(distributed)
        for step in range(first, num_batches):
            # Exactly num_batches requests: the length is known, and asking past the end only
            # costs time (see `distribute` on the stalls tf.data can cause when an epoch ends).
            batch = next(iterator, None)
            if batch is None:
                raise RuntimeError(f"the epoch's dataset ended after {step} of {num_batches} batches")
            pending.append(train_step(batch))
            self.global_step += 1
            at_validation = (step + 1) in val_steps or run.due_by_steps(self.global_step, loop, step + 1 == num_batches)
            at_save = (run.checkpointer is not None and run.save_every_steps > 0
                       and self.global_step % run.save_every_steps == 0)
            if len(pending) >= self.log_every or at_validation or at_save or step + 1 == num_batches:
                self._flush(pending, loop, run, progbar, step)
            if at_validation:
                self._validate(loop, run.validate, epoch + (step + 1) / num_batches, (step + 1) == num_batches,
                               run.cb)
            loop.step_in_epoch = step + 1
            for hook in self.step_hooks:
                hook(self.global_step)
            if at_save or self._stop_signal:
                self._flush(pending, loop, run, progbar, step)
                self._save(run.checkpointer, loop, run.outputs, run.callbacks)
            if self._stop_signal:
                raise TrainingInterrupted(self.global_step, run.checkpointer is not None)
        self._end_epoch(loop, run.outputs, started, run.cb)
        self._save(run.checkpointer, loop, run.outputs, run.callbacks)
        lifecycle.enter_phase("between epochs")

    def _validate(self, loop: "_LoopState", evaluate, position: float, end: bool, cb) -> None:
        cb.on_test_begin()
        self._validating = True
        lifecycle.enter_phase("validation")
        try:
            loop.last_val = evaluate()
        finally:
            self._validating = False
        self.history.append(self._row(position, "val", end, loop.last_val))
        if self.verbose:
            shown = "  ".join(f"val_{k}={v:.4f}" for k, v in loop.last_val.items())
            print(f"  validation at epoch {position:.2f} (step {self.global_step}): {shown}")
        cb.on_test_end({f"val_{k}": v for k, v in loop.last_val.items()} | {"epoch_position": position})

    def _end_epoch(self, loop: "_LoopState", outputs: Optional[TrainingOutputs], started: float, cb) -> None:
        train_logs = {"loss": loop.loss_total / max(loop.loss_steps, 1)}
        train_logs.update({k: total / max(loop.loss_steps, 1) for k, total in loop.term_totals.items()})
        train_logs.update(outputs.result() if outputs else {})
        train_logs["learning_rate"] = current_learning_rate(self.optimizer)
        train_logs["seconds"] = time.time() - started
        self.history.append(self._row(loop.epoch + 1.0, "train", True, train_logs))
        epoch_logs = dict(train_logs) | {f"val_{k}": v for k, v in loop.last_val.items()}
        if self.verbose:
            print("  epoch %d: %s" % (loop.epoch + 1, "  ".join(f"{k}={v:.4g}" for k, v in epoch_logs.items())))
        cb.on_epoch_end(loop.epoch, epoch_logs)
        loop.next_epoch(bool(self.model.stop_training))

    def _save(self, checkpointer: Optional[TrainingCheckpointer], loop: "_LoopState",
              outputs: Optional[TrainingOutputs], callbacks) -> None:
        if checkpointer is None:
            return
        state = loop.to_dict() | {"global_step": self.global_step, "history": self.history,
                                  "callbacks": {type(c).__name__: c.get_state() for c in callbacks
                                                if hasattr(c, "get_state")}}
        checkpointer.save(state, outputs.get_state() if outputs else {})

    def _resume(self, checkpointer: TrainingCheckpointer, loop: "_LoopState", outputs: Optional[TrainingOutputs],
                callbacks) -> None:
        state = checkpointer.resume_state
        checkpointer.check_compatible(state)
        arrays = checkpointer.restore(state)
        loop.load(state)
        self.global_step = int(state["global_step"])
        self.history[:] = state["history"]
        if outputs is not None:
            outputs.set_state(arrays)
        for c in callbacks:
            if hasattr(c, "set_state") and type(c).__name__ in state.get("callbacks", {}):
                c.set_state(state["callbacks"][type(c).__name__])
        if self.verbose:
            where = "finished" if loop.finished else f"epoch {loop.epoch + 1}, step {loop.step_in_epoch}"
            print(f"resuming from {state['prefix']} (global step {self.global_step}; {where})")

    def _row(self, position: float, split: str, end: bool, logs: Dict[str, float]) -> Dict[str, Any]:
        return {"epoch": round(position, 6), "step": self.global_step, "split": split, "end_of_epoch": end, **logs}

    def _flush(self, pending: List[Dict[str, tf.Tensor]], loop: "_LoopState", run: "_Epoch",
               progbar: Optional[ProgressBar], step: int) -> None:
        """Hand the pending steps' outputs on, add their losses to the epoch's, update the bar; empties `pending`.

        Callbacks get `on_train_batch_end` with the epoch's running loss, `recent_loss` (the mean over the pending
        steps; with several loss terms also `recent_NAME` for each) and `examples` (how many examples those steps
        trained on). The bar shows the running loss (and each term's, and the task's running metrics if its outputs
        tracker gives them).
        """
        if not pending:
            return
        losses = np.array([float(p["loss"]) for p in pending])
        bad = np.flatnonzero(~np.isfinite(losses))
        if bad.size:
            at = self.global_step - len(pending) + int(bad[0]) + 1
            raise TrainingDiverged(f"the training loss became {losses[bad[0]]} at step {at}; training stopped")
        terms = {k: [float(p[k]) for p in pending] for k in self._loss_keys[1:]}
        if run.outputs is not None:
            for p in pending:
                run.outputs.add({k: v.numpy() for k, v in p.items() if k not in self._loss_keys})
        examples = sum(int(p["preds"].shape[0]) for p in pending)
        # A step that passes its padding mask through counts its real tokens (shown as tokens/s).
        counts = {"tokens": sum(int(np.sum(p[PADDING_MASK])) for p in pending)} if PADDING_MASK in pending[0] else None
        pending.clear()
        loop.loss_total += float(np.sum(losses))
        loop.loss_steps += len(losses)
        for key, values in terms.items():
            loop.term_totals[key] = loop.term_totals.get(key, 0.0) + float(np.sum(values))
        running = {k: total / loop.loss_steps for k, total in [("loss", loop.loss_total), *loop.term_totals.items()]}
        recent = {f"recent_{k}": float(np.mean(v)) for k, v in [("loss", losses), *terms.items()]}
        run.cb.on_train_batch_end(step, {"loss": running["loss"], **recent, "examples": examples})
        if progbar is not None:
            shown = {**running, **(run.outputs.running() if hasattr(run.outputs, "running") else {})}
            progbar.update(step + 1, shown, counts)


class _Epoch:
    """What every epoch of one `fit` call runs with."""

    def __init__(self, make_epoch_dataset: EpochDatasetFn, validate, outputs: Optional[TrainingOutputs],
                 validations_per_epoch: int, cb: keras.callbacks.CallbackList, callbacks,
                 checkpointer: Optional[TrainingCheckpointer], save_every_steps: int, validate_every_steps: int = 0):
        self.make_epoch_dataset, self.validate, self.outputs = make_epoch_dataset, validate, outputs
        self.validations_per_epoch, self.cb, self.callbacks = validations_per_epoch, cb, callbacks
        self.checkpointer, self.save_every_steps = checkpointer, save_every_steps
        self.validate_every_steps = validate_every_steps

    def due_by_steps(self, global_step: int, loop: "_LoopState", epoch_end: bool) -> bool:
        """Whether a validation is due after `global_step` under validate_every_steps (every N steps, and after the
        last step of the last epoch)."""
        if not (self.validate and self.validate_every_steps):
            return False
        return global_step % self.validate_every_steps == 0 or (epoch_end and loop.epoch + 1 == loop.epochs)


class _LoopState:
    """Where the loop is: epoch, step within it, running loss (and loss terms), last validation, finished or
    not."""

    def __init__(self, epochs: int):
        self.epochs, self.epoch, self.step_in_epoch, self.finished = epochs, 0, 0, False
        self.loss_total, self.loss_steps = 0.0, 0
        self.term_totals: Dict[str, float] = {}  # with several loss terms: each one's sum over the epoch's steps
        self.last_val: Dict[str, float] = {}

    def next_epoch(self, stop: bool) -> None:
        """Move to the start of the next epoch (or finish)."""
        self.epoch, self.step_in_epoch = self.epoch + 1, 0
        self.loss_total, self.loss_steps, self.last_val, self.term_totals = 0.0, 0, {}, {}
        self.finished = stop or self.epoch >= self.epochs

    def to_dict(self) -> Dict[str, Any]:
        """JSON-serialisable state."""
        return {"epoch": self.epoch, "step_in_epoch": self.step_in_epoch, "finished": self.finished,
                "loss_total": self.loss_total, "loss_steps": self.loss_steps, "last_val": self.last_val,
                "term_totals": self.term_totals}

    def load(self, state: Dict[str, Any]) -> None:
        """Restore from to_dict()'s output."""
        self.epoch, self.step_in_epoch = int(state["epoch"]), int(state["step_in_epoch"])
        self.finished = bool(state["finished"]) or self.epoch >= self.epochs
        self.loss_total, self.loss_steps = float(state["loss_total"]), int(state["loss_steps"])
        self.last_val = dict(state["last_val"])
        self.term_totals = dict(state.get("term_totals", {}))


def validation_steps(num_batches: int, per_epoch: int) -> set:
    """The 1-based steps of an epoch after which to validate: evenly spaced, the last at the end."""
    if per_epoch <= 0 or num_batches <= 0:
        return set()
    per_epoch = min(per_epoch, num_batches)
    return {int(math.ceil(num_batches * (j + 1) / per_epoch)) for j in range(per_epoch)}


class BestModelMonitor(keras.callbacks.Callback):
    """Saves the model at each new best validation score and stops after `patience` epochs without one."""

    def __init__(self, monitor: str, save: Callable[[], None], patience: int = 0, mode: str = "max",
                 verbose: bool = True):
        super().__init__()
        self.monitor, self.save_fn, self.patience, self.mode, self.verbose = monitor, save, patience, mode, verbose
        self.best: Optional[float] = None
        self.best_position: Optional[float] = None
        self.epochs_without_improvement = 0
        self._improved = False
        self.best_weights: Optional[List[np.ndarray]] = None

    def restore_best(self, model: keras.Model, load_saved: Callable[[], List[np.ndarray]]) -> None:
        """Put the best weights back into `model` (from memory, or from disk after a resume)."""
        model.set_weights(self.best_weights if self.best_weights is not None else load_saved())

    def _better(self, value: float) -> bool:
        if self.best is None:
            return True
        return value > self.best if self.mode == "max" else value < self.best

    def on_test_end(self, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None or not math.isfinite(value):
            return
        if self._better(value):
            self.best, self.best_position, self._improved = value, logs.get("epoch_position"), True
            self.best_weights = [w.copy() for w in self.model.get_weights()]
            self.save_fn()
            if self.verbose:
                print(f"  new best {self.monitor}={value:.4f}: model saved")

    def get_state(self) -> Dict[str, Any]:
        """What must survive a restart (for resuming)."""
        return {"best": self.best, "best_position": self.best_position,
                "epochs_without_improvement": self.epochs_without_improvement, "improved": self._improved}

    def set_state(self, state: Dict[str, Any]) -> None:
        """Restore get_state()'s output."""
        self.best, self.best_position = state["best"], state["best_position"]
        self.epochs_without_improvement, self._improved = state["epochs_without_improvement"], state["improved"]

    def on_epoch_end(self, epoch, logs=None):
        self.epochs_without_improvement = 0 if self._improved else self.epochs_without_improvement + 1
        self._improved = False
        if self.patience > 0 and self.epochs_without_improvement >= self.patience:
            self.model.stop_training = True
            if self.verbose:
                print(f"  early stopping: no new best {self.monitor} for {self.patience} epoch(s)")


class HistoryWriter(keras.callbacks.Callback):
    """Writes history.csv and one plot per metric (train vs validation by epoch) after every epoch."""

    def __init__(self, trainer: Trainer, out_dir: str, metrics: Sequence[str]):
        super().__init__()
        self.trainer, self.out_dir, self.metrics = trainer, out_dir, tuple(metrics)

    def on_epoch_end(self, epoch, logs=None):
        lifecycle.enter_phase("plots")
        reports.write_history_csv(self.trainer.history, os.path.join(self.out_dir, "history.csv"))
        reports.plot_all_history(self.trainer.history, self.out_dir, self.metrics)


class OutputTracker:
    """Keeps chosen outputs of an epoch's training steps; `summarize` turns them into the epoch's metrics
    (a TrainingOutputs)."""

    def __init__(self, keys: Sequence[str], summarize: Callable[[Dict[str, List[np.ndarray]]], Dict[str, float]]):
        self.keys, self.summarize = list(keys), summarize
        self.reset()

    def reset(self) -> None:
        """Forget the epoch's outputs."""
        self.parts: Dict[str, List[np.ndarray]] = {k: [] for k in self.keys}

    def add(self, out: Dict[str, np.ndarray]) -> None:
        """Keep the chosen outputs of one training step."""
        for key in self.keys:
            self.parts[key].append(out[key])

    def result(self) -> Dict[str, float]:
        """The epoch's training metrics (and a fresh start)."""
        metrics = self.summarize(self.parts) if any(self.parts.values()) else {}
        self.reset()
        return metrics

    def get_state(self) -> Dict[str, np.ndarray]:
        """The outputs so far, for a checkpoint."""
        return pack_arrays(self.parts)

    def set_state(self, arrays: Dict[str, np.ndarray]) -> None:
        """Restore get_state()'s output."""
        self.parts = unpack_arrays(arrays, self.keys)
