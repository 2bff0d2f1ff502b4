"""Fine-tune BERT for named entity recognition on CSV data (tokens, tags), then test and report.

    python run_ner.py --bert_model=/models/finbert --data_path=./data --save_model_path=model/test_model \
        --max_len=512 --learning_rate=5e-5 --epochs=5 --batch_size=16

    python run_ner.py --do_predict --save_model_path=model/test_model --predict_file=new.csv

The same from Python: bert_tf.ner.run (train, predict, run, predict_sentences) with a bert_tf.ner.config.NerConfig.
"""

from __future__ import annotations

from bert_tf import quiet  # noqa: F401  (first: silences TensorFlow's start-up unless --verbose_tf)

from typing import Sequence

from absl import app

from bert_tf import cli, config
from bert_tf.ner.config import NerConfig

config.define_flags(NerConfig)


@cli.exit_on_error
def main(argv: Sequence[str]) -> None:
    """Train (default), predict (--do_predict), or both (--do_train --do_predict)."""
    from bert_tf.ner import run  # after the flags: `--help` is fast, TensorFlow starts only when needed

    run.run(config.from_flags(NerConfig))


if __name__ == "__main__":
    app.run(main, flags_parser=config.parse_command_line)
