"""Optimizers and learning-rate schedules for BERT fine-tuning.

* `WarmupLinearDecay`: linear warm-up to the peak rate, then linear decay to 0 at the last step.
* `PolynomialWarmupDecay`: linear warm-up, then a polynomial decay counted from step 0 (NVIDIA's BERT schedule;
  `published_schedule` gives its settings for LAMB and Adam).
* `EpochExponentialDecay`: the rate multiplied by `gamma` after every epoch.
* `AfterConstantPhase`: a constant rate for a first phase, then another schedule counted from its end.
* `BertAdamW` / `BertLamb`: Keras AdamW / Lamb with decoupled weight decay that skips LayerNorm
  weights and biases, optional per-variable learning-rate multipliers (e.g. a slower encoder), variables that
  can be frozen for the first updates (`freeze_until`), and gradients that the training loop has already
  all-reduced and clipped.
* `TrustRatioLamb`: LAMB as NVIDIA's BERT pretraining computes it: the weight decay is added to the Adam update
  before the trust ratio (so the ratio scales it too).
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import keras
import tensorflow as tf

NO_DECAY_NAMES = ("bias", "gamma", "beta")  # Keras names of biases and LayerNorm scale / offset
SCHEDULES = ("published", "linear")  # published: NVIDIA's (PolynomialWarmupDecay); linear: WarmupLinearDecay
LAMB_DECAYS = ("trust_ratio", "decoupled")  # where LAMB applies the weight decay (TrustRatioLamb / BertLamb)


@keras.saving.register_keras_serializable(package="bert_tf")
class WarmupLinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up from 0 to `peak` over `warmup_steps`, then linear decay to 0 at `total_steps`."""

    def __init__(self, peak: float, warmup_steps: int, total_steps: int):
        self.peak = float(peak)
        self.warmup_steps = int(max(warmup_steps, 0))
        self.total_steps = int(max(total_steps, 1))

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        warmup = tf.cast(self.warmup_steps, tf.float32)
        total = tf.cast(self.total_steps, tf.float32)
        warm = self.peak * step / tf.maximum(warmup, 1.0)
        decay = self.peak * tf.maximum(total - step, 0.0) / tf.maximum(total - warmup, 1.0)
        return tf.where(step < warmup, warm, decay)

    def get_config(self) -> dict:
        return {"peak": self.peak, "warmup_steps": self.warmup_steps, "total_steps": self.total_steps}


@keras.saving.register_keras_serializable(package="bert_tf")
class PolynomialWarmupDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up from 0 to `peak` over `warmup_steps`; from then on `start * (1 - min(step, total) / total) **
    power`, a polynomial decay to 0 counted from step 0 (not from the end of the warm-up)."""

    def __init__(self, peak: float, warmup_steps: int, total_steps: int, power: float, start: float):
        self.peak, self.start, self.power = float(peak), float(start), float(power)
        self.warmup_steps = int(max(warmup_steps, 0))
        self.total_steps = int(max(total_steps, 1))

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        warmup = tf.cast(self.warmup_steps, tf.float32)
        done = tf.minimum(step, float(self.total_steps)) / float(self.total_steps)
        decayed = self.start * tf.pow(1.0 - done, self.power)
        return tf.where(step < warmup, self.peak * step / tf.maximum(warmup, 1.0), decayed)

    def get_config(self) -> dict:
        return {"peak": self.peak, "warmup_steps": self.warmup_steps, "total_steps": self.total_steps,
                "power": self.power, "start": self.start}


def published_schedule(optimizer: str, peak: float, warmup_steps: int, total_steps: int) -> PolynomialWarmupDecay:
    """NVIDIA's BERT schedule: for LAMB power 0.5 from `peak` (the rate drops at the end of the warm-up to the
    decayed value); for Adam power 1 from peak / (1 - warmup / total), which meets the warm-up's peak at its end
    (NVIDIA's "crossover" rule; the same rates as WarmupLinearDecay)."""
    if optimizer == "lamb" or warmup_steps >= total_steps:
        return PolynomialWarmupDecay(peak, warmup_steps, total_steps, 0.5 if optimizer == "lamb" else 1.0, peak)
    return PolynomialWarmupDecay(peak, warmup_steps, total_steps, 1.0, peak / (1.0 - warmup_steps / total_steps))


def make_schedule(kind: str, optimizer: str, peak: float, warmup_steps: int,
                  total_steps: int) -> keras.optimizers.schedules.LearningRateSchedule:
    """The schedule named `kind` (SCHEDULES): "published" (NVIDIA's, see published_schedule) or "linear"
    (WarmupLinearDecay)."""
    if kind == "published":
        return published_schedule(optimizer, peak, warmup_steps, total_steps)
    if kind == "linear":
        return WarmupLinearDecay(peak, warmup_steps, total_steps)
    raise ValueError(f"unknown schedule {kind!r} ({' or '.join(SCHEDULES)})")


def describe_schedule(kind: str, optimizer: str, peak: float, warmup_steps: int, total_steps: int) -> str:
    """One line saying what the schedule does."""
    warm = f"linear warm-up to {peak:g} over {warmup_steps} steps, then "
    if kind == "linear":
        return warm + f"linear decay to 0 at step {total_steps}"
    schedule = published_schedule(optimizer, peak, warmup_steps, total_steps)
    return warm + (f"{schedule.start:g} x (1 - step / {total_steps}) ^ {schedule.power:g} (NVIDIA's polynomial "
                   "decay from step 0)")


@keras.saving.register_keras_serializable(package="bert_tf")
class EpochExponentialDecay(keras.optimizers.schedules.LearningRateSchedule):
    """`initial` during epoch 1, multiplied by `gamma` at the start of each later epoch."""

    def __init__(self, initial: float, gamma: float, steps_per_epoch: int):
        self.initial = float(initial)
        self.gamma = float(gamma)
        self.steps_per_epoch = int(max(steps_per_epoch, 1))

    def __call__(self, step):
        epoch = tf.math.floordiv(tf.cast(step, tf.int64), self.steps_per_epoch)
        return self.initial * tf.pow(tf.constant(self.gamma, tf.float32), tf.cast(epoch, tf.float32))

    def get_config(self) -> dict:
        return {"initial": self.initial, "gamma": self.gamma, "steps_per_epoch": self.steps_per_epoch}


@keras.saving.register_keras_serializable(package="bert_tf")
class AfterConstantPhase(keras.optimizers.schedules.LearningRateSchedule):
    """`first_rate` for the first `first_steps` steps, then `schedule` counted from the end of that phase."""

    def __init__(self, schedule: keras.optimizers.schedules.LearningRateSchedule, first_steps: int,
                 first_rate: float):
        self.schedule, self.first_steps, self.first_rate = schedule, int(first_steps), float(first_rate)

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        later = self.schedule(tf.maximum(step - float(self.first_steps), 0.0))
        return tf.where(step < float(self.first_steps), tf.cast(self.first_rate, later.dtype), later)

    def get_config(self) -> dict:
        return {"schedule": keras.saving.serialize_keras_object(self.schedule), "first_steps": self.first_steps,
                "first_rate": self.first_rate}

    @classmethod
    def from_config(cls, config: dict) -> "AfterConstantPhase":
        return cls(keras.saving.deserialize_keras_object(config["schedule"]), config["first_steps"],
                   config["first_rate"])


class _FineTuningMixin:
    """Per-variable learning-rate multipliers, variables frozen for the first updates, decay folded into the update
    step, no second all-reduce."""

    def set_lr_multiplier(self, multiplier_of: Callable[[keras.Variable], float]) -> None:
        """Give each variable a learning-rate multiplier (call before the optimizer is built)."""
        self._multiplier_of = multiplier_of

    def freeze_until(self, updates: int, is_frozen: Callable[[keras.Variable], bool]) -> None:
        """Leave the variables `is_frozen` picks unchanged (rate 0, so no decay either) during the first `updates`
        updates; their Adam moments still follow the gradients (call before the optimizer is built)."""
        self._freeze_updates, self._is_frozen = int(updates), is_frozen

    def build(self, var_list):
        multiplier_of = getattr(self, "_multiplier_of", None)
        self._lr_multipliers = [1.0 if multiplier_of is None else float(multiplier_of(v)) for v in var_list]
        is_frozen = getattr(self, "_is_frozen", None)
        self._frozen = [is_frozen is not None and bool(is_frozen(v)) for v in var_list]
        super().build(var_list)

    def _multiplier(self, variable):
        index = self._get_variable_index(variable)
        if not self._frozen[index]:
            return self._lr_multipliers[index]
        thawed = tf.cast(self.iterations >= self._freeze_updates, variable.dtype)
        return self._lr_multipliers[index] * thawed

    def _all_reduce_sum_gradients(self, grads_and_vars):
        # The training loop all-reduces (and clips) gradients itself, so that clipping
        # uses the global norm of the summed gradient.
        return list(grads_and_vars)

    def _apply_weight_decay(self, variables):
        # Decay is applied per variable inside update_step, where the multiplier is known.
        return

    def _decay(self, variable, learning_rate) -> None:
        if self.weight_decay is None or not self._use_weight_decay(variable):
            return
        wd = tf.cast(self.weight_decay, variable.dtype)
        # One multiply (var * (1 - wd * lr)) instead of var - var * wd * lr: one pass fewer.
        self.assign(variable, variable * (1.0 - wd * tf.cast(learning_rate, variable.dtype)))


def _handle(variable) -> tf.Tensor:
    """The resource handle of a Keras or tf variable (inside a strategy update: this device's copy)."""
    return (variable.value if isinstance(variable, keras.Variable) else variable).handle


class BertAdamW(_FineTuningMixin, keras.optimizers.AdamW):
    """AdamW for fine-tuning (see module docstring).

    The Adam part runs as TensorFlow's fused kernel (one pass over the variable, both moments and the
    gradient instead of about a dozen element-wise ops); it computes what Keras' Adam computes
    (bias-corrected step lr * sqrt(1 - b2^t) / (1 - b1^t), epsilon added to sqrt(v)), up to float
    rounding. Decay is applied first, as Keras' AdamW does.
    """

    def update_step(self, gradient, variable, learning_rate):
        learning_rate = tf.cast(learning_rate, variable.dtype) * self._multiplier(variable)
        self._decay(variable, learning_rate)
        if self.amsgrad or variable.dtype not in (tf.float32, tf.float64):
            super().update_step(gradient, variable, learning_rate)
            return
        dtype = variable.dtype
        index = self._get_variable_index(variable)
        step = tf.cast(self.iterations + 1, dtype)
        beta_1 = tf.cast(self.beta_1, dtype)
        beta_2 = tf.cast(self.beta_2, dtype)
        tf.raw_ops.ResourceApplyAdam(
            var=_handle(variable), m=_handle(self._momentums[index]), v=_handle(self._velocities[index]),
            beta1_power=tf.pow(beta_1, step), beta2_power=tf.pow(beta_2, step), lr=learning_rate,
            beta1=beta_1, beta2=beta_2, epsilon=tf.cast(self.epsilon, dtype),
            grad=tf.cast(gradient, dtype), use_locking=False)


class BertLamb(_FineTuningMixin, keras.optimizers.Lamb):
    """LAMB with decoupled weight decay (see module docstring)."""

    def update_step(self, gradient, variable, learning_rate):
        learning_rate = tf.cast(learning_rate, variable.dtype) * self._multiplier(variable)
        self._decay(variable, learning_rate)
        super().update_step(gradient, variable, learning_rate)


class TrustRatioLamb(BertLamb):
    """LAMB with the weight decay inside the trust ratio, as NVIDIA's BERT pretraining: with t the update's number
    (1, 2, ...), m and v Adam's moments, u = m / (1 - beta_1^t) / (sqrt(v / (1 - beta_2^t)) + epsilon) + wd * w
    (wd 0 for excluded variables), then w -= lr * r * u with r = |w| / |u| (1 when either norm is 0)."""

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        learning_rate = tf.cast(learning_rate, dtype) * self._multiplier(variable)
        gradient = tf.cast(gradient, dtype)
        index = self._get_variable_index(variable)
        m, v = self._momentums[index], self._velocities[index]
        step = tf.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        self.assign(m, beta_1 * m + (1.0 - beta_1) * gradient)
        self.assign(v, beta_2 * v + (1.0 - beta_2) * tf.square(gradient))
        update = (m / (1.0 - tf.pow(beta_1, step))) / (tf.sqrt(v / (1.0 - tf.pow(beta_2, step))) +
                                                       tf.cast(self.epsilon, dtype))
        if self.weight_decay is not None and self._use_weight_decay(variable):
            update = update + tf.cast(self.weight_decay, dtype) * variable
        w_norm, u_norm = tf.norm(variable), tf.norm(update)
        ratio = tf.where((w_norm > 0) & (u_norm > 0), w_norm / tf.maximum(u_norm, 1e-30), tf.ones_like(w_norm))
        self.assign_sub(variable, ratio * learning_rate * update)


def make_optimizer(
    name: str,
    learning_rate,
    weight_decay: float,
    epsilon: float = 1e-6,
    multiplier_of: Optional[Callable[[keras.Variable], float]] = None,
    no_decay_names: Sequence[str] = NO_DECAY_NAMES,
    lamb_decay: str = "decoupled",
) -> keras.optimizers.Optimizer:
    """Build an AdamW or LAMB optimizer with weight decay off for LayerNorm weights and biases; LAMB's decay
    decoupled (BertLamb) or, with lamb_decay="trust_ratio", inside the trust ratio (TrustRatioLamb)."""
    if name == "adamw":
        optimizer = BertAdamW(learning_rate=learning_rate, weight_decay=weight_decay, epsilon=epsilon)
    elif name == "lamb":
        if lamb_decay not in LAMB_DECAYS:
            raise ValueError(f"unknown LAMB weight decay {lamb_decay!r} ({' or '.join(LAMB_DECAYS)})")
        lamb = TrustRatioLamb if lamb_decay == "trust_ratio" else BertLamb
        optimizer = lamb(learning_rate=learning_rate, weight_decay=weight_decay, epsilon=epsilon)
    else:
        raise ValueError(f"unknown optimizer {name!r} (adamw or lamb)")
    optimizer.exclude_from_weight_decay(var_names=list(no_decay_names))
    if multiplier_of is not None:
        optimizer.set_lr_multiplier(multiplier_of)
    return optimizer


def current_learning_rate(optimizer: keras.optimizers.Optimizer) -> float:
    """The peak-group learning rate the optimizer uses at its current step."""
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    lr = inner.learning_rate
    return float(lr.numpy() if hasattr(lr, "numpy") else lr)
