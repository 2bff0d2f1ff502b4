"""Continue masked-LM pretraining of a BERT checkpoint on your own text (or on create_pretraining_data.py TFRecords),
then fine-tune the result with run_ner.py / run_classifier.py --bert_model=OUTPUT.

    python run_pretraining.py --bert_model=/models/finbert --input_files='text/*.txt' --output_dir=out/finbert_dapt \
        --max_seq_length=128 --train_batch_size=16 --learning_rate=1e-4 --num_train_steps=10000 \
        --num_warmup_steps=1000 --seed=42
    python run_ner.py --bert_model=out/finbert_dapt --data_path=data --save_model_path=out/ner

The checkpoint's held-out figures alone, without training:

    python run_pretraining.py --bert_model=out/finbert_dapt --nodo_train --eval_files_dir=heldout/ --output_dir=out/eval

From Python: bert_tf.pretraining.run (train, evaluate, run) with a bert_tf.pretraining.config.PretrainingConfig.
"""

from __future__ import annotations

from bert_tf import quiet  # noqa: F401  (first: silences TensorFlow's start-up unless --verbose_tf)

from typing import Sequence

from absl import app

from bert_tf import cli, config
from bert_tf.pretraining.config import PretrainingConfig

config.define_flags(PretrainingConfig)


@cli.exit_on_error
def main(argv: Sequence[str]) -> None:
    """Continue masked-LM pretraining (--do_train) and evaluate it (--do_eval)."""
    from bert_tf.pretraining import run  # after the flags: `--help` is fast, TensorFlow starts only when needed

    run.run(config.from_flags(PretrainingConfig))


if __name__ == "__main__":
    app.run(main, flags_parser=config.parse_command_line)
