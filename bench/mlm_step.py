"""Masked-LM training step of BERT-base: run_pretraining.py's model and Trainer against transformers
`BertForMaskedLM` + torch AdamW, one fixed random batch each, timed in the same run (issue 25's bench).

    make .bench-venv/.installed      # once: the project's requirements plus torch and transformers
    .bench-venv/bin/python bench/mlm_step.py [--batch 8] [--seq_len 128] [--predictions 20] [--steps 5]

Each side runs in its own process (bench.tf_step / bench.torch_reference, task "mlm"): BERT-base (12 layers,
hidden 768, vocabulary 30,522), random weights, exact GELU, dropout 0.1, AdamW, gradient clipping at 1.0,
float32 (ours with XLA under --use_xla). Ours computes the head's logits at the masked positions only (as Google's and NVIDIA's
pretraining do); BertForMaskedLM computes them at every position and masks the loss. Writes
bench/mlm_step.json and prints the sequences/s of each side and their ratio, with the float32 2048^2 tf.matmul and
torch.mm rates measured before and after both sides.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Dict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.common import cpu_model, load_average, log, package_versions, run_json, write_json  # noqa: E402

BERT_BASE = {"vocab": 30522, "layers": 12, "heads": 12, "hidden": 768, "intermediate": 3072, "labels": 2}


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq_len", type=int, default=128)
    p.add_argument("--predictions", type=int, default=20, help="masked positions a sequence (NVIDIA's phase 1: 20)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--steps", type=int, default=5, help="timed steps a repeat")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--use_xla", action="store_true", help="our step compiled with XLA (the published recipe's --use_xla)")
    p.add_argument("--work_dir", default="/tmp/bert_tf_mlm_step")
    p.add_argument("--out", default=os.path.join(ROOT, "bench", "mlm_step.json"))
    return p.parse_args()


def main() -> None:
    args = parse_args()
    os.makedirs(args.work_dir, exist_ok=True)
    shape = dict(BERT_BASE, task="mlm", batch=args.batch, seq_len=args.seq_len, predictions=args.predictions,
                 warmup=args.warmup, steps=args.steps, repeats=args.repeats, seed=1)
    result: Dict[str, Any] = {"command": " ".join(["python bench/mlm_step.py"] + sys.argv[1:]),
                              "machine": {"cpu": cpu_model(), "load_before": load_average()},
                              "packages": package_versions(("tensorflow", "keras", "keras-hub", "torch",
                                                            "transformers")), "shape": shape}
    gemm = {"mode": "gemm", "size": 2048, "dtype": "float32"}
    result["gemm_before"] = run_json("bench.tf_step", ["--config", json.dumps(gemm)],
                                     os.path.join(args.work_dir, "gemm_before.json"))
    result["torch_gemm_before"] = run_json("bench.torch_reference", ["--config", json.dumps(gemm)],
                                           os.path.join(args.work_dir, "torch_gemm_before.json"))
    for side, module, extra in (("ours", "bench.tf_step", {"use_amp": False, "use_xla": args.use_xla}),
                                ("reference", "bench.torch_reference", {"use_amp": False})):
        log(f"{side}: masked-LM steps, batch {args.batch} x {args.seq_len}")
        result[side] = run_json(module, ["--config", json.dumps(dict(shape, mode="step", **extra))],
                                os.path.join(args.work_dir, f"{side}.json"))
    result["gemm_after"] = run_json("bench.tf_step", ["--config", json.dumps(gemm)],
                                    os.path.join(args.work_dir, "gemm_after.json"))
    result["torch_gemm_after"] = run_json("bench.torch_reference", ["--config", json.dumps(gemm)],
                                          os.path.join(args.work_dir, "torch_gemm_after.json"))
    ours, reference = result["ours"].get("seq_per_s"), result["reference"].get("seq_per_s")
    result["ratio"] = ours / reference if ours and reference else None
    write_json(args.out, result)
    rates = [result[k].get("flops", 0) / 1e9 for k in ("gemm_before", "gemm_after", "torch_gemm_before",
                                                       "torch_gemm_after")]
    print(f"masked-LM step{' (ours with XLA)' if args.use_xla else ''}, BERT-base, batch {args.batch} x {args.seq_len}, {args.predictions} predictions a "
          f"sequence: ours {ours and round(ours, 2)} seq/s, BertForMaskedLM + torch AdamW "
          f"{reference and round(reference, 2)} seq/s, ratio {result['ratio'] and round(result['ratio'], 2)}; "
          f"{result['machine']['cpu']}, float32 2048^2 GFLOP/s before / after: tf.matmul {rates[0]:.1f} / "
          f"{rates[1]:.1f}, torch.mm {rates[2]:.1f} / {rates[3]:.1f}; {args.out}")


if __name__ == "__main__":
    main()
