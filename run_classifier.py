"""Fine-tune BERT (BioBERT) to classify dictionary-tagger matches: che, dis, ggp, org or out.

NVIDIA run_classifier style:

    python run_classifier.py --task_name=consensus --data_dir=data --output_dir=out \
        --bert_model=/models/biobert --do_train --do_eval --do_predict \
        --max_seq_length=256 --train_batch_size=32 --learning_rate=2e-5 --num_train_epochs=4 \
        --replace_span=[unused1]

Predict a corpus of shards with a saved model:

    python run_classifier.py --do_predict --output_dir=out --predict_file='shards/*.tsv' --shard_id=last_field

The flags are the fields of bert_tf.classifier.config.ClassifierConfig; bert_tf.classifier.run is the same job
as a Python API.
"""

from __future__ import annotations

from bert_tf import quiet  # noqa: F401  (first: silences TensorFlow's start-up unless --verbose_tf)

from typing import Sequence

from absl import app

from bert_tf import cli, config
from bert_tf.classifier.config import ClassifierConfig

config.define_flags(ClassifierConfig)


@cli.exit_on_error
def main(argv: Sequence[str]) -> None:
    """--do_train, --do_eval and --do_predict, in that order."""
    from bert_tf.classifier import run  # after the flags: `--help` is fast, TensorFlow starts only when needed

    run.run(config.from_flags(ClassifierConfig))


if __name__ == "__main__":
    app.run(main, flags_parser=config.parse_command_line)
