"""Worker: the PyTorch reference loops (transformers BertForTokenClassification + torch.optim.AdamW).

What the users' PyTorch script does, step for step: forward, cross-entropy over labelled
positions, loss.backward(), clip_grad_norm_(1.0), optimizer.step(), scheduler.step(), with
loss.item() read every step. Modes:

* "gemm": a size x size float32 torch.mm (cfg["size"]), for comparison with TensorFlow's GEMM rate.
* "step": one fixed random batch at the BERT-base shape, timed after warm-up steps.
* "ner": one epoch on the rows that the TensorFlow side wrote (shuffle, batch, pad each batch
  to its longest row), then logits for the evaluation windows, written back for scoring with
  our own stitching and metrics.

It imports neither TensorFlow nor bert_tf.
"""

from __future__ import annotations

import statistics
import time
from typing import Any, Dict, List, Tuple

import numpy as np

from bench.common import load_average, step_figures, worker_main

IGNORE = -1
GROUP_STEPS = 10  # steps per timing group (as our Trainer's log_every in the NER case)


def _device():
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def gemm_rate(size: int, min_seconds: float = 2.0) -> Dict[str, Any]:
    """FLOP/s of a size x size float32 torch.mm (best of timed runs after a warm-up)."""
    import torch

    device = _device()
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    per_call = 20 if device.type == "cuda" else 1
    torch.mm(a, b)
    _sync()
    rates: List[float] = []
    started = time.perf_counter()
    while time.perf_counter() - started < min_seconds or len(rates) < 3:
        t0 = time.perf_counter()
        for _ in range(per_call):
            torch.mm(a, b)
        _sync()
        rates.append(2.0 * size ** 3 * per_call / (time.perf_counter() - t0))
    return {"size": size, "dtype": "float32", "flops": max(rates), "median_flops": statistics.median(rates),
            "runs": len(rates)}


def make_optimizer(model, lr: float, weight_decay: float, warmup: int, total: int):
    """AdamW without decay on biases and LayerNorm weights, with linear warm-up and decay."""
    import torch
    from transformers import get_linear_schedule_with_warmup

    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (no_decay if name.endswith("bias") or "LayerNorm" in name else decay).append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=lr, eps=1e-6)
    return optimizer, get_linear_schedule_with_warmup(optimizer, warmup, total)


class Stepper:
    """One training step of the reference loop (mixed precision on a GPU with use_amp)."""

    def __init__(self, model, optimizer, scheduler, use_amp: bool):
        import torch

        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler
        self.device = next(model.parameters()).device
        self.amp = use_amp
        self.amp_dtype = torch.float16 if self.device.type == "cuda" else torch.bfloat16
        self.scaler = torch.amp.GradScaler("cuda") if use_amp and self.device.type == "cuda" else None

    def __call__(self, batch: Dict[str, Any]) -> float:
        import torch

        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp):
            logits = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                                token_type_ids=batch["token_type_ids"]).logits
        loss = torch.nn.functional.cross_entropy(
            logits.float().view(-1, logits.shape[-1]), batch["labels"].view(-1), ignore_index=IGNORE)
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
            self.optimizer.step()
        self.scheduler.step()
        return loss.item()


def step_rate(cfg: Dict[str, Any]) -> Dict[str, Any]:
    """Sequences/s of the reference training step at a fixed shape, random init."""
    import torch
    from transformers import BertConfig, BertForMaskedLM, BertForTokenClassification

    torch.manual_seed(cfg["seed"])
    device = _device()
    config = BertConfig(
        vocab_size=cfg["vocab"], hidden_size=cfg["hidden"], num_hidden_layers=cfg["layers"],
        num_attention_heads=cfg["heads"], intermediate_size=cfg["intermediate"],
        max_position_embeddings=max(512, cfg["seq_len"]), num_labels=cfg["labels"], hidden_act="gelu",
    )
    mlm = cfg.get("task") == "mlm"  # BertForMaskedLM: logits at every position, loss at the masked ones
    model = (BertForMaskedLM if mlm else BertForTokenClassification)(config).to(device).train()
    steps, warmup, repeats = cfg["steps"], cfg["warmup"], cfg["repeats"]
    optimizer, scheduler = make_optimizer(model, 5e-5, 0.01, 0, 10 * (warmup + steps * repeats))
    stepper = Stepper(model, optimizer, scheduler, cfg["use_amp"])
    rng = np.random.default_rng(cfg["seed"])
    shape = (cfg["batch"], cfg["seq_len"])
    batch = {
        "input_ids": torch.as_tensor(rng.integers(5, cfg["vocab"], size=shape), device=device),
        "attention_mask": torch.ones(shape, dtype=torch.long, device=device),
        "token_type_ids": torch.zeros(shape, dtype=torch.long, device=device),
        "labels": torch.as_tensor(mlm_labels(rng, shape, cfg) if mlm else rng.integers(0, cfg["labels"], size=shape),
                                  device=device),
    }
    t0 = time.perf_counter()
    for _ in range(warmup):
        stepper(batch)
    warmup_seconds = time.perf_counter() - t0
    per_step = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(steps):
            stepper(batch)
        _sync()
        per_step.append((time.perf_counter() - t0) / steps)
    return {
        **step_figures(cfg, per_step, warmup_seconds),
        "parameters": int(sum(p.numel() for p in model.parameters() if p.requires_grad)),
        "device": device.type.upper(),
        "attention": getattr(model.config, "_attn_implementation", "?"),
        "threads": torch.get_num_threads(),
    }


def mlm_labels(rng, shape: Tuple[int, int], cfg: Dict[str, Any]) -> np.ndarray:
    """Labels of a masked-LM batch: a random token at `predictions` positions a row, IGNORE elsewhere."""
    labels = np.full(shape, IGNORE, np.int64)
    for row in labels:
        row[rng.choice(np.arange(1, shape[1] - 1), cfg["predictions"], replace=False)] = rng.integers(5, cfg["vocab"],
                                                                                                       cfg["predictions"])
    return labels


# ----------------------------------------------------------------------------- NER epoch


def _ragged(data: Dict[str, np.ndarray], name: str) -> List[np.ndarray]:
    """Rows stored as one flat array plus offsets."""
    flat, offsets = data[name], data[name + "_offsets"]
    return [flat[offsets[i]:offsets[i + 1]] for i in range(len(offsets) - 1)]


def pad_batch(token_rows: List[np.ndarray], label_rows: List[np.ndarray], pad_id: int, device) -> Tuple[Dict, int]:
    """A batch padded to its longest row (the users' collate function); (tensors, padded length)."""
    import torch

    length = max(len(r) for r in token_rows)
    ids = np.full((len(token_rows), length), pad_id, np.int64)
    labels = np.full((len(token_rows), length), IGNORE, np.int64)
    mask = np.zeros((len(token_rows), length), np.int64)
    for i, (tokens, tags) in enumerate(zip(token_rows, label_rows)):
        ids[i, :len(tokens)], labels[i, :len(tokens)], mask[i, :len(tokens)] = tokens, tags, 1
    batch = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids), "labels": labels}
    return {k: torch.as_tensor(v, device=device) for k, v in batch.items()}, length


def ner_epoch(cfg: Dict[str, Any]) -> Dict[str, Any]:
    """Fine-tune MiniLM for one epoch on the given rows; write the evaluation windows' logits."""
    import torch
    from transformers import BertForTokenClassification

    torch.manual_seed(cfg["seed"])
    data = dict(np.load(cfg["rows_npz"]))
    tokens, labels = _ragged(data, "train_tokens"), _ragged(data, "train_labels")
    device = _device()
    model = BertForTokenClassification.from_pretrained(cfg["model_dir"], num_labels=cfg["num_labels"]).to(device)
    batch_size, epochs = cfg["batch_size"], cfg["epochs"]
    steps_per_epoch = (len(tokens) + batch_size - 1) // batch_size
    optimizer, scheduler = make_optimizer(model, cfg["learning_rate"], cfg["weight_decay"],
                                          int(0.2 * steps_per_epoch), epochs * steps_per_epoch)
    stepper = Stepper(model, optimizer, scheduler, False)
    rng = np.random.default_rng(cfg["seed"])
    model.train()
    real = padded = 0
    epoch_seconds: List[float] = []
    groups: List[float] = []
    for _ in range(epochs):
        started = mark = time.perf_counter()
        order = rng.permutation(len(tokens))
        for step, start in enumerate(range(0, len(order), batch_size)):
            picked = order[start:start + batch_size]
            batch, length = pad_batch([tokens[i] for i in picked], [labels[i] for i in picked], cfg["pad_id"], device)
            stepper(batch)
            real += sum(len(tokens[i]) for i in picked)
            padded += length * len(picked)
            if (step + 1) % GROUP_STEPS == 0:
                groups.append((time.perf_counter() - mark) / GROUP_STEPS)
                mark = time.perf_counter()
        _sync()
        epoch_seconds.append(time.perf_counter() - started)
    eval_seconds = predict_rows(model, _ragged(data, "eval_tokens"), cfg, device)
    return {
        "epoch_seconds": epoch_seconds,
        "group_step_seconds": groups,
        "steps_per_epoch": steps_per_epoch,
        "padded_fraction": 1.0 - real / max(padded, 1),
        "positions": padded,
        "eval_seconds": eval_seconds,
        "device": device.type.upper(),
        "attention": getattr(model.config, "_attn_implementation", "?"),
    }


def predict_rows(model, rows: List[np.ndarray], cfg: Dict[str, Any], device) -> float:
    """Logits of every evaluation row (batches padded to their longest), saved flat to cfg["logits_npy"]."""
    import torch

    model.eval()
    out: List[np.ndarray] = []
    started = time.perf_counter()
    with torch.inference_mode():
        for start in range(0, len(rows), cfg["eval_batch_size"]):
            part = rows[start:start + cfg["eval_batch_size"]]
            batch, _ = pad_batch(part, [np.zeros(len(r), np.int64) for r in part], cfg["pad_id"], device)
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                           token_type_ids=batch["token_type_ids"]).logits.float().cpu().numpy()
            out.extend(logits[i, :len(r)] for i, r in enumerate(part))
    seconds = time.perf_counter() - started
    np.save(cfg["logits_npy"], np.concatenate(out).astype(np.float32))
    return seconds


def run(cfg: Dict[str, Any]) -> Dict[str, Any]:
    """The worker's job, by cfg["mode"]: gemm, step or ner."""
    load_before = load_average()
    result = {"gemm": lambda: gemm_rate(cfg["size"]), "step": lambda: step_rate(cfg),
              "ner": lambda: ner_epoch(cfg)}[cfg["mode"]]()
    result["load_before"] = load_before
    return result


if __name__ == "__main__":
    worker_main(run)
