"""Flags of the published command lines that bert-tf accepts so that those commands run as they are.

The published classifier script (`run_ner_consensus.py`) ran under `tf.compat.v1.app.run()`, which parses
flags with `known_only`: undefined flags were silently ignored, and every published command passes some
(`--do_prepare`, `--cased`). Others were defined but did nothing a TF2 run can use (`--master`,
`--iterations_per_loop`: TPU settings). bert-tf defines each, and says once in the log that it does nothing.
"""

from __future__ import annotations

from typing import Dict

# flag -> why it does nothing (what the published code did with it)
IGNORED_FLAGS: Dict[str, str] = {
    "do_prepare": "the published script never defined it (tf.compat.v1.app.run ignored it); features are "
                  "prepared and cached on every run",
    "cased": "the published script never defined it (casing came from --do_lower_case, default false); here "
             "--do_lower_case or the checkpoint's tokenizer decides",
    "master": "a TPU/TensorFlow master URL; use --distribution",
    "iterations_per_loop": "a TPU Estimator setting; the training loop here has no such loop",
}
