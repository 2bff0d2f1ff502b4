"""Continue masked-LM pretraining of a BERT checkpoint on your own text (or on create_pretraining_data.py TFRecords),
then fine-tune the result with run_ner.py / run_classifier.py --bert_model=OUTPUT.

    python run_pretraining.py --bert_model=/models/finbert --input_files='text/*.txt' --output_dir=out/finbert_dapt \
        --max_seq_length=128 --train_batch_size=16 --learning_rate=1e-4 --num_train_steps=10000 \
        --num_warmup_steps=1000 --seed=42
    python run_ner.py --bert_model=out/finbert_dapt --data_path=data --save_model_path=out/ner
"""

from __future__ import annotations

from bert_tf import quiet  # noqa: F401  (first: silences TensorFlow's start-up unless --verbose_tf)

import math
import os
import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from absl import app, flags

from bert_tf import flags as shared_flags
from bert_tf.errors import InputError

shared_flags.define_shared_flags()
flags.DEFINE_string("input_files", None, "Training text: a file, a folder, a quoted glob or @LIST, comma-separated: "
                    "raw text (.txt: one document a line, or paragraphs separated by blank lines), NER CSV or CoNLL "
                    "(the words), consensus TSV (the contexts); or TFRecords of create_pretraining_data.py.")
flags.DEFINE_string("input_files_dir", None, "NVIDIA's flag: a folder of create_pretraining_data.py TFRecords "
                    "(or of text files) to train on.")
flags.DEFINE_string("eval_files_dir", None, "Held-out data (a folder, file, glob or @LIST; text or TFRecords) "
                    "instead of --eval_fraction of the training documents.")
flags.DEFINE_string("output_dir", None, "Output folder: model/ (a Hugging Face BertForMaskedLM directory that "
                    "run_ner.py and run_classifier.py take as --bert_model), history, curves, report.html.")
flags.DEFINE_bool("do_train", True, "Train.")
flags.DEFINE_bool("do_eval", True, "Evaluate on the held-out part before training and at every validation.")
flags.DEFINE_integer("train_batch_size", 16, "Sequences per micro-step over all replicas; one optimizer step "
                     "takes train_batch_size x num_accumulation_steps sequences.")
flags.DEFINE_integer("eval_batch_size", 16, "Sequences per evaluation batch.")
flags.DEFINE_integer("max_seq_length", 128, "Block length in tokens ([CLS] and [SEP] included).")
flags.DEFINE_integer("max_predictions_per_seq", 20, "Most masked positions per sequence.")
flags.DEFINE_float("masked_lm_prob", 0.15, "Share of a sequence's tokens to predict (80% [MASK], 10% random, "
                   "10% kept).")
flags.DEFINE_bool("whole_word_masking", True, "Mask all pieces of a word together.")
flags.DEFINE_integer("num_train_steps", None, "Optimizer steps to train.")
flags.DEFINE_integer("num_warmup_steps", None, "Linear warm-up steps (default: 10% of --num_train_steps), then "
                     "linear decay to 0.")
flags.DEFINE_integer("num_accumulation_steps", 1, "Micro-batches whose gradients are summed into one update "
                     "(exactly one step of the k-times larger batch).")
flags.DEFINE_enum("optimizer_type", "lamb", ["lamb", "adamw"], "Optimizer (LAMB as NVIDIA's pretraining).")
flags.DEFINE_float("eval_fraction", 0.05, "Share of the training documents held out for evaluation (without "
                   "--eval_files_dir).")
flags.DEFINE_integer("shuffle_buffer", 10_000, "Text: blocks in the seeded shuffle buffer the input streams through "
                     "(memory about 0.6 MiB a thousand blocks of 128 tokens; the files' order is shuffled too).")
flags.DEFINE_integer("num_validate_during_training", 1, "Held-out evaluations per epoch, the last at its end.")
flags.DEFINE_enum("next_sentence_prediction", "auto", ["auto", "off"], "auto: train next-sentence prediction "
                  "beside masked LM when the TFRecords carry next_sentence_labels and the checkpoint has the head "
                  "(cls/seq_relationship), as NVIDIA's run_pretraining.py; off: masked LM alone.")
flags.DEFINE_bool("report_loss", True, "Accepted for NVIDIA's command lines (the loss is always reported).")
# --horovod is a shared flag (bert_tf/flags.py): under mpiexec/mpirun each rank a multi_worker worker (see main).
flags.DEFINE_bool("use_fp16", False, "NVIDIA's name for --use_amp.")
FLAGS = flags.FLAGS

# Imported after the flags so that `--help` is fast and TensorFlow starts only when needed.
from bert_tf import (checkpoints, cli, distribution, html_report, optimization, resume,  # noqa: E402
                     tensorboard)
from bert_tf.batch_format import LABELS, PADDING_MASK  # noqa: E402
from bert_tf.io_utils import write_json_atomic, write_text_atomic  # noqa: E402
from bert_tf.pretraining import inputs, masking, model as mlm_model, stream, task, tfrecords  # noqa: E402
from bert_tf.pretraining.tfrecords import NSP_FEATURE  # noqa: E402
from bert_tf.training import HistoryWriter, Trainer  # noqa: E402


def check_flags() -> None:
    """Reject flag values that cannot work, before anything is read or written."""
    if not FLAGS.output_dir:
        raise InputError("--output_dir is required")
    if FLAGS.do_train and not FLAGS.num_train_steps:
        raise InputError("--num_train_steps is required for training")
    for name in ("train_batch_size", "eval_batch_size", "max_predictions_per_seq", "num_accumulation_steps",
                 "num_validate_during_training", "shuffle_buffer"):
        if FLAGS[name].value < 1:
            raise InputError(f"--{name}={FLAGS[name].value}: must be at least 1")
    if FLAGS.max_seq_length < 8:
        raise InputError(f"--max_seq_length={FLAGS.max_seq_length}: must be at least 8")
    if not 0.0 < FLAGS.masked_lm_prob < 1.0:
        raise InputError(f"--masked_lm_prob={FLAGS.masked_lm_prob}: must be between 0 and 1")
    masking.check_max_predictions(FLAGS.max_seq_length, FLAGS.masked_lm_prob, FLAGS.max_predictions_per_seq)
    if not (FLAGS.do_train or FLAGS.do_eval):
        raise InputError("--nodo_train --nodo_eval: nothing to do")
    if not (FLAGS.input_files or FLAGS.input_files_dir or (FLAGS.eval_files_dir and not FLAGS.do_train)):
        raise InputError("--input_files (or --input_files_dir) is required")
    if FLAGS.num_warmup_steps is not None and FLAGS.num_warmup_steps < 0:
        raise InputError(f"--num_warmup_steps={FLAGS.num_warmup_steps}: must not be negative")


def load_checkpoint() -> Tuple[checkpoints.Checkpoint, object]:
    """The checkpoint and its tokenizer (NVIDIA's trio may leave out --vocab_file when vocab.txt lies beside
    --bert_config_file), checked against --max_seq_length and for a [MASK] token."""
    vocab_file = FLAGS.vocab_file
    if FLAGS.bert_config_file and not vocab_file:
        beside = os.path.join(os.path.dirname(os.path.abspath(FLAGS.bert_config_file)), "vocab.txt")
        if not os.path.isfile(beside):
            raise InputError("no vocabulary: give --vocab_file (no vocab.txt beside the config)", FLAGS.bert_config_file)
        vocab_file = beside
    checkpoint, tokenizer = checkpoints.load_pretrained(FLAGS.bert_model, FLAGS.bert_config_file, vocab_file,
                                                       FLAGS.init_checkpoint, FLAGS.do_lower_case)
    checkpoints.check_positions(checkpoint, FLAGS.max_seq_length, "max_seq_length")
    tokenizer.token_to_id("[MASK]")
    return checkpoint, tokenizer


def masking_config(tokenizer) -> masking.MaskingConfig:
    """The masking settings of the flags and the vocabulary."""
    return masking.MaskingConfig(FLAGS.masked_lm_prob, FLAGS.max_predictions_per_seq, FLAGS.whole_word_masking,
                                 tokenizer.token_to_id("[MASK]"), tokenizer.vocab_size,
                                 (tokenizer.cls_id, tokenizer.sep_id, tokenizer.pad_id))


def text_stream(tokenizer, files: List[str], fraction: float, held: bool, batch_size: int) -> stream.MaskedLMStream:
    """One side of the text files as masked-LM batches (`fraction` of the documents held out)."""
    corpus = stream.TextCorpus(files, tokenizer, FLAGS.max_seq_length, masking.continuation_table(tokenizer), fraction,
                               FLAGS.seed)
    return stream.MaskedLMStream(corpus, held, masking_config(tokenizer), FLAGS.seed, batch_size, tokenizer.pad_id,
                                 FLAGS.shuffle_buffer)


def record_data(files: List[str], batch_size: int) -> tfrecords.TFRecordData:
    """create_pretraining_data.py records in batches of `batch_size`."""
    return tfrecords.TFRecordData(files, FLAGS.max_seq_length, FLAGS.max_predictions_per_seq, batch_size, FLAGS.seed)


def input_file_list() -> List[str]:
    """The files of --input_files and --input_files_dir."""
    return inputs.expand_input_files(",".join(x for x in (FLAGS.input_files, FLAGS.input_files_dir) if x))


def read_data(tokenizer, batch_size: int):
    """(training data, held-out data or None, the input files, a description) from the input flags."""
    train_files = input_file_list()
    eval_files = inputs.expand_input_files(FLAGS.eval_files_dir) if FLAGS.eval_files_dir else []
    if tfrecords.are_tfrecords(train_files):
        train = record_data(train_files, batch_size)
        held = record_data(eval_files, FLAGS.eval_batch_size) if eval_files else None
        return train, held, train_files + eval_files, f"TFRecords: {train.describe()}"
    train = text_stream(tokenizer, train_files, FLAGS.eval_fraction if FLAGS.do_eval and not eval_files else 0.0,
                        False, batch_size)
    scan = train.corpus.scan
    held = text_stream(tokenizer, eval_files, 0.0, False, FLAGS.eval_batch_size) if eval_files else (
        stream.MaskedLMStream(train.corpus, True, train.masking, FLAGS.seed, FLAGS.eval_batch_size, tokenizer.pad_id)
        if scan.documents[1] else None)
    stream.check_enough_blocks(train, train_files[0])
    held_out = (f"{held.corpus.scan.documents[0]} documents of --eval_files_dir" if eval_files else
                f"{scan.documents[1]} documents ({FLAGS.eval_fraction:g} drawn by a seeded hash of each)" if held else
                "none")
    return train, held, train_files + eval_files, (
        f"{scan.documents[0]} documents, {scan.words} words -> {train.num_blocks} blocks of at most "
        f"{FLAGS.max_seq_length} tokens ({train.real_token_share():.1%} of batch positions real tokens; "
        f"{scan.words_cut} words longer than a block split), streamed from {len(train_files)} file(s) through a "
        f"shuffle buffer of {FLAGS.shuffle_buffer} blocks; held out: {held_out}")


def read_held_out(tokenizer):
    """(held-out data, a description) for --nodo_train: --eval_files_dir whole, or the documents of --input_files
    that a training run with the same --seed and --eval_fraction holds out."""
    if FLAGS.eval_files_dir:
        files, fraction = inputs.expand_input_files(FLAGS.eval_files_dir), 0.0
    else:
        files, fraction = input_file_list(), FLAGS.eval_fraction
    if tfrecords.are_tfrecords(files):
        if not FLAGS.eval_files_dir:
            raise InputError("TFRecords hold no held-out part: give the records to evaluate as --eval_files_dir",
                             files[0])
        data = record_data(files, FLAGS.eval_batch_size)
        return data, f"TFRecords: {data.describe()}"
    data = text_stream(tokenizer, files, fraction, bool(fraction), FLAGS.eval_batch_size)
    if not data.num_blocks:
        raise InputError(f"no held-out document at --eval_fraction={fraction:g}", files[0])
    side = "every document" if not fraction else f"the {fraction:g} held out by a seeded hash of each document"
    return data, f"{data.corpus.scan.documents[bool(fraction)]} documents ({side}) -> {data.num_blocks} blocks"


def next_sentence_plan(checkpoint, data) -> Tuple[Optional[Dict[str, np.ndarray]], str]:
    """(the checkpoint's next-sentence head when next-sentence prediction trains, else None; the run table's line
    saying which and why): on only when the TFRecords carry next_sentence_labels and the checkpoint has the head."""
    if FLAGS.next_sentence_prediction == "off":
        return None, "off (--next_sentence_prediction=off)"
    if not isinstance(data, tfrecords.TFRecordData):
        return None, "off (text carries no next-sentence labels)"
    if not data.has_next_sentence_labels:
        return None, "off (the TFRecords carry no next_sentence_labels)"
    head = checkpoints.read_next_sentence_head(checkpoint)
    if head is None:
        return None, "off (the checkpoint has no next-sentence head: cls/seq_relationship with the pooler)"
    return head, (f"on (labels in the TFRecords, head from {checkpoint.path}); loss = masked-LM loss + "
                  "next-sentence loss")


def use_next_sentence_labels(train_data, held) -> None:
    """Make both sides' batches carry the next-sentence labels; InputError when the held-out records lack them."""
    if held is not None and not held.has_next_sentence_labels:
        raise InputError(f"the held-out records carry no {NSP_FEATURE} while the training records do (or give "
                         "--next_sentence_prediction=off)", held.paths[0])
    for data in (train_data, held):
        if data is not None:
            data.next_sentence = True


def build_trainer(checkpoint, tokenizer, run, steps: int,
                  next_sentence: Optional[Dict[str, np.ndarray]]) -> Tuple[mlm_model.MaskedLM, Trainer]:
    """The masked-LM model (head from the checkpoint when it has one; with the next-sentence head when given), its
    optimizer, and the Trainer."""
    warmup = FLAGS.num_warmup_steps if FLAGS.num_warmup_steps is not None else steps // 10
    with run.strategy.scope():
        mlm = mlm_model.load_masked_lm(checkpoint, tokenizer, next_sentence=next_sentence)
        schedule = optimization.WarmupLinearDecay(FLAGS.learning_rate, warmup, steps)
        optimizer = optimization.make_optimizer(FLAGS.optimizer_type, schedule, FLAGS.weight_decay)
    on = next_sentence is not None
    trainer = Trainer(mlm.model, optimizer, run.strategy, use_xla=FLAGS.use_xla, loss_scale=run.loss_scale,
                      passthrough_keys=(LABELS, PADDING_MASK) + ((NSP_FEATURE,) if on else ()),
                      log_every=FLAGS.log_every, verbose=FLAGS.verbose, feature_keys=mlm_model.MODEL_INPUTS,
                      accumulation_steps=FLAGS.num_accumulation_steps, losses=task.losses(on))
    return mlm, trainer


def write_eval_results(out_dir: str, results: Dict[str, Optional[Dict[str, float]]]) -> str:
    """eval_results.json and eval_results.txt: held-out loss, accuracy and perplexity, with next-sentence prediction
    also each loss and the next-sentence accuracy (before and after training, or of the checkpoint alone)."""
    rows = {name: value for name, value in results.items() if value}
    write_json_atomic(os.path.join(out_dir, "eval_results.json"), rows)
    text = "\n".join(f"{name}: " + "  ".join(f"{k}={v:.4f}" for k, v in values.items()) for name, values in rows.items())
    write_text_atomic(os.path.join(out_dir, "eval_results.txt"), text + "\n")
    return text


def train(out_dir: str) -> None:
    """Continue pretraining; save OUTPUT/model; evaluate before and after."""
    checkpoint, tokenizer = load_checkpoint()
    batch_size = FLAGS.train_batch_size * FLAGS.num_accumulation_steps
    train_data, held, files, described = read_data(tokenizer, batch_size)
    next_sentence, nsp_line = next_sentence_plan(checkpoint, train_data)
    if next_sentence is not None:
        use_next_sentence_labels(train_data, held)
    fingerprint = resume.run_fingerprint(cli.flag_values(flags), files)
    checkpointer = resume.prepare_training_dir(out_dir, FLAGS.overwrite_output_dir, FLAGS.resume, "output_dir",
                                               fingerprint, distribution.chief_by_environment(FLAGS.distribution))
    run = distribution.setup_run(FLAGS.seed, FLAGS.use_amp or FLAGS.use_fp16, FLAGS.distribution,
                                 FLAGS.deterministic, FLAGS.amp_dtype)
    if FLAGS.train_batch_size % run.replicas:
        raise InputError(f"--train_batch_size={FLAGS.train_batch_size} must be a multiple of the {run.replicas} replicas")
    mlm, trainer = build_trainer(checkpoint, tokenizer, run, FLAGS.num_train_steps, next_sentence)
    steps_per_epoch = train_data.steps_per_epoch
    epochs = math.ceil(FLAGS.num_train_steps / steps_per_epoch)
    summary = {
        "model": f"{checkpoint.path} ({checkpoint.kind}; activation {checkpoint.activation})",
        "masked-LM head": mlm.head_source,
        "next-sentence prediction": nsp_line,
        "tokenizer": f"{tokenizer.source} (lower-case: {tokenizer.lowercase})",
        "data": described,
        "masking": f"{'whole-word' if FLAGS.whole_word_masking else 'per-piece'}, {FLAGS.masked_lm_prob:g} of the "
                   f"tokens (at most {FLAGS.max_predictions_per_seq}), 80/10/10, new masks every epoch (seed "
                   f"{FLAGS.seed})",
        "devices": distribution.describe_devices(run.strategy),
        "batch": f"{run.describe_batch(FLAGS.train_batch_size)} x {FLAGS.num_accumulation_steps} accumulation "
                 f"step(s) = {batch_size} sequences per update",
        "steps": f"{FLAGS.num_train_steps} ({steps_per_epoch} per epoch, {epochs} epoch(s)); optimizer "
                 f"{FLAGS.optimizer_type}, learning rate {FLAGS.learning_rate:g}",
        "precision": run.precision, "xla": FLAGS.use_xla,
    }
    cli.print_table("bert-tf masked-LM pretraining", summary)
    os.makedirs(out_dir, exist_ok=True)
    if run.chief:
        cli.write_run_config(out_dir, cli.flag_values(flags), {"checkpoint": checkpoint.path})
        html_report.write_run_summary(out_dir, "bert-tf masked-LM pretraining",
                                      {**summary, html_report.EXAMPLES_PER_EPOCH: steps_per_epoch * batch_size})
    fit(trainer, mlm, train_data, held, out_dir, checkpointer, run.chief, epochs)


def fit(trainer: Trainer, mlm, train_data, held, out_dir: str, checkpointer, chief: bool, epochs: int) -> None:
    """Train for --num_train_steps with held-out evaluations; write the model, results and report."""
    steps_per_epoch = train_data.steps_per_epoch

    def make_epoch_dataset(epoch: int, first_step: int):
        num = min(steps_per_epoch, FLAGS.num_train_steps - epoch * steps_per_epoch)
        return train_data.epoch_dataset(epoch, first_step, num), num

    on = mlm.next_sentence is not None
    validate = (lambda: task.evaluate(trainer, held, FLAGS.eval_batch_size, on)) if held is not None else None
    before = validate() if validate is not None and checkpointer.resume_state is None else None
    if before:
        print("held-out before training: " + "  ".join(f"{k}={v:.4f}" for k, v in before.items()))
    held_out_before = task.HeldOutBefore(before)
    callbacks = [held_out_before] + ([HistoryWriter(trainer, out_dir, task.metrics(on))] if chief else [])
    callbacks += tensorboard.make_writer(FLAGS.tensorboard, chief, trainer, out_dir)
    checkpointer.attach(mlm.model, trainer.optimizer)
    started = time.time()
    trainer.fit(make_epoch_dataset, epochs=epochs, validate=validate,
                outputs=task.TrainingAccuracy(on),
                validations_per_epoch=FLAGS.num_validate_during_training, callbacks=callbacks,
                checkpointer=checkpointer, save_every_steps=FLAGS.save_checkpoints_steps)
    seconds = time.time() - started
    tokens = FLAGS.num_train_steps * train_data.batch_size * FLAGS.max_seq_length
    print(f"training took {seconds:.1f} s (at most {tokens / max(seconds, 1e-9):.0f} tokens/s)")
    if chief:
        mlm_model.save_hf(mlm, os.path.join(out_dir, "model"))
        after = next((row for row in reversed(trainer.history) if row["split"] == "val"), None)
        after = {k: after[k] for k in task.metrics(on)} if after else None
        print(write_eval_results(out_dir, {"before": held_out_before.values, "after": after}))
        html_report.write_run_report(out_dir)
    resume.finish_training(checkpointer, FLAGS.keep_checkpoints)
    architecture = mlm_model.HF_PRETRAINING_ARCHITECTURE if on else mlm_model.HF_ARCHITECTURE
    print(f"outputs in {out_dir}: model/ (Hugging Face {architecture}; --bert_model={out_dir} for run_ner.py and "
          "run_classifier.py), eval_results.txt, history.csv, loss.png, accuracy.png, perplexity.png"
          f"{', masked_lm_loss.png, next_sentence_loss.png, next_sentence_accuracy.png' if on else ''}, report.html")


def evaluate_only(out_dir: str) -> None:
    """--nodo_train: the checkpoint's held-out masked-LM loss, accuracy and perplexity (and next-sentence loss and
    accuracy when the records carry its labels and the checkpoint has the head); trains nothing."""
    checkpoint, tokenizer = load_checkpoint()
    held, described = read_held_out(tokenizer)
    next_sentence, nsp_line = next_sentence_plan(checkpoint, held)
    if next_sentence is not None:
        use_next_sentence_labels(held, None)
    run = distribution.setup_run(FLAGS.seed, FLAGS.use_amp or FLAGS.use_fp16, FLAGS.distribution,
                                 FLAGS.deterministic, FLAGS.amp_dtype)
    with run.strategy.scope():
        mlm = mlm_model.load_masked_lm(checkpoint, tokenizer, next_sentence=next_sentence)
    trainer = Trainer(mlm.model, None, run.strategy, use_xla=FLAGS.use_xla, passthrough_keys=(LABELS,),
                      verbose=FLAGS.verbose, feature_keys=mlm_model.MODEL_INPUTS)
    cli.print_table("bert-tf masked-LM evaluation", {
        "model": f"{checkpoint.path} ({checkpoint.kind})", "masked-LM head": mlm.head_source,
        "next-sentence prediction": nsp_line, "data": described,
        "masking": f"fixed held-out masks, {FLAGS.masked_lm_prob:g} of the tokens (seed {FLAGS.seed})",
        "devices": distribution.describe_devices(run.strategy), "precision": run.precision})
    results = task.evaluate(trainer, held, FLAGS.eval_batch_size, next_sentence is not None)
    if run.chief:
        os.makedirs(out_dir, exist_ok=True)
        print(write_eval_results(out_dir, {"eval": results}))
        print(f"outputs in {out_dir}: eval_results.txt, eval_results.json")


@cli.exit_on_error
def main(argv: Sequence[str]) -> None:
    """Continue masked-LM pretraining (--do_train) and evaluate it (--do_eval)."""
    check_flags()
    distribution.apply_horovod_flags(FLAGS, "train_batch_size")  # the published mpiexec launch: one worker a rank
    if FLAGS.do_train:
        train(FLAGS.output_dir)
    else:
        evaluate_only(FLAGS.output_dir)


if __name__ == "__main__":
    app.run(main)
