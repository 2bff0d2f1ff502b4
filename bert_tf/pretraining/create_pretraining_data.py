"""Write pretraining TFRecords (masked LM + next-sentence pairs) from raw text, record for record what Google's
create_pretraining_data.py (github:google-research/bert) writes for the same file, vocabulary, flags and seed.

    python -m bert_tf.pretraining.create_pretraining_data --input_file=corpus/part-00.txt \
        --output_file=records/part-00.tfrecord --vocab_file=model/vocab.txt --do_lower_case=True \
        --max_seq_length=128 --max_predictions_per_seq=20 --masked_lm_prob=0.15 --random_seed=12345 --dupe_factor=5

Input: one sentence a line, a blank line between documents (Google's format). Each input file is read alone (its
documents shuffled among themselves, its random next sentences drawn from it) and gives its own output file or
files: the records equal Google's run on that file alone, and memory is bounded by the largest input file (NVIDIA's
dataset scripts run Google's script once per shard the same way). From Python: `run(PretrainingDataConfig(...))`.
"""

from __future__ import annotations

from bert_tf import quiet  # noqa: F401  (first: silences TensorFlow's start-up)

import os
import random
import time
from array import array
from contextlib import ExitStack
from typing import List, Sequence, Tuple

from bert_tf import io_utils
from bert_tf.errors import InputError
from bert_tf.pretraining.config import PretrainingDataConfig, check_data_config
from bert_tf.pretraining.google_tokenizer import FullTokenizer, google_lines
from bert_tf.pretraining.nsp_instances import Document, Instance, InstanceSettings, documents_instances

RECORD_SUFFIX = ".tfrecord"
Job = Tuple[str, List[str]]  # (input file, its output files)


def input_paths(spec: str) -> List[str]:
    """The files of --input_file: comma-separated files, folders, globs or @LIST (io_utils.expand_input)."""
    return [path for item in spec.split(",") if item.strip() for path in io_utils.expand_input(item.strip())[0]]


def output_names(stem: str, shards: int) -> List[str]:
    """NAME.tfrecord, or NAME-00000-of-0000K.tfrecord ... for K shards."""
    if shards == 1:
        return [stem + RECORD_SUFFIX]
    return [f"{stem}-{i:05d}-of-{shards:05d}{RECORD_SUFFIX}" for i in range(shards)]


def plan(cfg: PretrainingDataConfig) -> List[Job]:
    """Which output files each input file gives; InputError for several inputs with --output_file, or two inputs
    that would write the same files."""
    inputs = input_paths(cfg.input_file or "")
    if not inputs:
        raise InputError(f"--input_file={cfg.input_file!r} names no file")
    if cfg.output_file:
        if len(inputs) > 1:
            raise InputError(f"--input_file names {len(inputs)} files: give --output_dir (one output per input "
                             f"file) instead of --output_file", inputs[1])
        return [(inputs[0], [p.strip() for p in cfg.output_file.split(",") if p.strip()])]
    jobs, owner = [], {}
    for path in inputs:
        stem = os.path.splitext(os.path.basename(path))[0]
        if stem in owner:
            raise InputError(f"gives the same output name as {owner[stem]} ({stem}{RECORD_SUFFIX})", path)
        owner[stem] = path
        jobs.append((path, [os.path.join(cfg.output_dir, n) for n in output_names(stem, cfg.output_shards)]))
    return jobs


def check_text_file(path: str) -> None:
    """InputError naming the file (and line) unless it is UTF-8 text with at least one non-blank line."""
    has_text = False
    for number, line in google_lines(path):
        if "\x00" in line:
            raise InputError("binary file (NUL bytes), expected text", path, number)
        has_text = has_text or bool(line.strip())
    if not has_text:
        raise InputError("no text: expected one sentence a line, a blank line between documents", path)


def read_documents(path: str, tokenizer: FullTokenizer) -> List[Document]:
    """Google's reading of one file: stripped lines tokenized, a blank line starts a new document, lines without
    tokens and empty documents dropped."""
    documents: List[Document] = [[]]
    for _, line in google_lines(path):
        line = line.strip()
        if not line:
            documents.append([])
        tokens = tokenizer.tokenize(line)
        if tokens:
            documents[-1].append(array("i", tokenizer.ids(tokens)))
    return [d for d in documents if d]


def instance_settings(cfg: PretrainingDataConfig, tokenizer: FullTokenizer) -> InstanceSettings:
    """The flags and the vocabulary's ids that drawing instances needs."""
    vocab = tokenizer.vocab
    return InstanceSettings(cfg.max_seq_length, cfg.short_seq_prob, cfg.masked_lm_prob, cfg.max_predictions_per_seq,
                            cfg.do_whole_word_mask, tokenizer.token_id("[CLS]"), tokenizer.token_id("[SEP]"),
                            tokenizer.token_id("[MASK]"), list(vocab.values()),
                            frozenset(i for t, i in vocab.items() if t.startswith("##")))


def example_bytes(instance: Instance, max_seq_length: int, max_predictions: int) -> bytes:
    """The serialized tf.train.Example of an instance, with Google's features, padding and order."""
    import tensorflow as tf

    ints = lambda values: tf.train.Feature(int64_list=tf.train.Int64List(value=values))  # noqa: E731
    length, predicted = len(instance.ids), len(instance.positions)
    padding, unpredicted = [0] * (max_seq_length - length), [0] * (max_predictions - predicted)
    segments = [0] * instance.b_start + [1] * (length - instance.b_start)
    features = {
        "input_ids": ints(list(instance.ids) + padding),
        "input_mask": ints([1] * length + padding),
        "segment_ids": ints(segments + padding),
        "masked_lm_positions": ints(list(instance.positions) + unpredicted),
        "masked_lm_ids": ints(list(instance.labels) + unpredicted),
        "masked_lm_weights": tf.train.Feature(float_list=tf.train.FloatList(
            value=[1.0] * predicted + [0.0] * len(unpredicted))),
        "next_sentence_labels": ints([1 if instance.is_random_next else 0]),
    }
    return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()


def write_records(instances: Sequence[Instance], outputs: List[str], cfg: PretrainingDataConfig) -> None:
    """The instances dealt round-robin over the output files, each written to a temporary name and renamed when
    all are complete."""
    import tensorflow as tf

    with ExitStack() as stack:
        temporary = [stack.enter_context(io_utils.atomic_path(path)) for path in outputs]
        writers = [stack.enter_context(tf.io.TFRecordWriter(path)) for path in temporary]
        for index, instance in enumerate(instances):
            writers[index % len(writers)].write(example_bytes(instance, cfg.max_seq_length,
                                                              cfg.max_predictions_per_seq))


def write_file(job: Job, tokenizer: FullTokenizer, cfg: PretrainingDataConfig) -> Tuple[int, int]:
    """Google's run on one input file: (documents, records written)."""
    path, outputs = job
    documents = read_documents(path, tokenizer)
    count = len(documents)
    instances = documents_instances(documents, instance_settings(cfg, tokenizer), cfg.dupe_factor,
                                    random.Random(cfg.random_seed))
    del documents
    write_records(instances, outputs, cfg)
    return count, len(instances)


def run(cfg: PretrainingDataConfig) -> List[Job]:
    """Check the settings, the vocabulary and every input file, then write each file's records; the jobs done."""
    check_data_config(cfg)
    tokenizer = FullTokenizer(cfg.vocab_file, cfg.do_lower_case)
    instance_settings(cfg, tokenizer)  # the vocabulary has [CLS], [SEP] and [MASK]
    jobs = plan(cfg)
    for path, _ in jobs:
        check_text_file(path)
    for job in jobs:
        started = time.monotonic()
        documents, records = write_file(job, tokenizer, cfg)
        print(f"{job[0]}: {documents} documents -> {records} records in {', '.join(job[1])} "
              f"({time.monotonic() - started:.1f} s)", flush=True)
    return jobs


def main(argv: Sequence[str]) -> None:
    """The command line: Google's flags (see PretrainingDataConfig)."""
    from bert_tf import config

    run(config.from_flags(PretrainingDataConfig))


if __name__ == "__main__":
    from absl import app

    from bert_tf import cli, config

    config.define_flags(PretrainingDataConfig)
    app.run(cli.exit_on_error(main))
