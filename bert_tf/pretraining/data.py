"""A run's data: the training and held-out sides (text streamed through masking, or create_pretraining_data.py
TFRecords) as the config names them, each with the line the run table shows."""

from __future__ import annotations

import dataclasses
from typing import List, Optional, Tuple, Union

from bert_tf.errors import InputError
from bert_tf.pretraining import inputs, masking, stream, tfrecords
from bert_tf.pretraining.config import PretrainingConfig
from bert_tf.tokenization import WordPieceTokenizer

Data = Union[stream.MaskedLMStream, tfrecords.TFRecordData]


@dataclasses.dataclass
class TrainingData:
    """The training side, the held-out side (None: no evaluation), every input file, and their description."""

    train: Data
    held: Optional[Data]
    files: List[str]
    described: str


def masking_config(cfg: PretrainingConfig, tokenizer: WordPieceTokenizer) -> masking.MaskingConfig:
    """The masking settings of the config and the vocabulary."""
    return masking.MaskingConfig(cfg.masked_lm_prob, cfg.max_predictions_per_seq, cfg.whole_word_masking,
                                 tokenizer.token_to_id("[MASK]"), tokenizer.vocab_size,
                                 (tokenizer.cls_id, tokenizer.sep_id, tokenizer.pad_id))


def text_stream(cfg: PretrainingConfig, tokenizer: WordPieceTokenizer, files: List[str], fraction: float, held: bool,
                batch_size: int) -> stream.MaskedLMStream:
    """One side of the text files as masked-LM batches (`fraction` of the documents held out)."""
    corpus = stream.TextCorpus(files, tokenizer, cfg.max_seq_length, masking.continuation_table(tokenizer), fraction,
                               cfg.seed)
    return stream.MaskedLMStream(corpus, held, masking_config(cfg, tokenizer), cfg.seed, batch_size, tokenizer.pad_id,
                                 cfg.shuffle_buffer)


def record_data(cfg: PretrainingConfig, files: List[str], batch_size: int,
                tokenizer: WordPieceTokenizer) -> tfrecords.TFRecordData:
    """create_pretraining_data.py records in batches of `batch_size`, their token ids checked against the
    vocabulary."""
    return tfrecords.TFRecordData(files, cfg.max_seq_length, cfg.max_predictions_per_seq, batch_size, cfg.seed,
                                  tokenizer.vocab_size)


def input_file_list(cfg: PretrainingConfig) -> List[str]:
    """The files of --input_files and --input_files_dir."""
    return inputs.expand_input_files(",".join(x for x in (cfg.input_files, cfg.input_files_dir) if x))


def read_training_data(cfg: PretrainingConfig, tokenizer: WordPieceTokenizer, batch_size: int) -> TrainingData:
    """The training data in batches of `batch_size` and the held-out data (--eval_files_dir, or --eval_fraction of
    the training documents; None without --do_eval or documents to hold out)."""
    train_files = input_file_list(cfg)
    eval_files = inputs.expand_input_files(cfg.eval_files_dir) if cfg.eval_files_dir else []
    if tfrecords.are_tfrecords(train_files):
        train = record_data(cfg, train_files, batch_size, tokenizer)
        held = record_data(cfg, eval_files, cfg.eval_batch_size, tokenizer) if eval_files else None
        return TrainingData(train, held, train_files + eval_files, f"TFRecords: {train.describe()}")
    train = text_stream(cfg, tokenizer, train_files, cfg.eval_fraction if cfg.do_eval and not eval_files else 0.0,
                        False, batch_size)
    scan = train.corpus.scan
    held = text_stream(cfg, tokenizer, eval_files, 0.0, False, cfg.eval_batch_size) if eval_files else (
        stream.MaskedLMStream(train.corpus, True, train.masking, cfg.seed, cfg.eval_batch_size, tokenizer.pad_id)
        if scan.documents[1] else None)
    stream.check_enough_blocks(train, train_files[0])
    held_out = (f"{held.corpus.scan.documents[0]} documents of --eval_files_dir" if eval_files else
                f"{scan.documents[1]} documents ({cfg.eval_fraction:g} drawn by a seeded hash of each)" if held else
                "none")
    return TrainingData(train, held, train_files + eval_files, (
        f"{scan.documents[0]} documents, {scan.words} words -> {train.num_blocks} blocks of at most "
        f"{cfg.max_seq_length} tokens ({train.real_token_share():.1%} of batch positions real tokens; "
        f"{scan.words_cut} words longer than a block split), streamed from {len(train_files)} file(s) through a "
        f"shuffle buffer of {cfg.shuffle_buffer} blocks; held out: {held_out}"))


def read_held_out(cfg: PretrainingConfig, tokenizer: WordPieceTokenizer) -> Tuple[Data, str]:
    """(the held-out data, its description) for evaluation without training: --eval_files_dir whole, or the
    documents of --input_files that a training run with the same --seed and --eval_fraction holds out."""
    if cfg.eval_files_dir:
        files, fraction = inputs.expand_input_files(cfg.eval_files_dir), 0.0
    else:
        files, fraction = input_file_list(cfg), cfg.eval_fraction
    if tfrecords.are_tfrecords(files):
        if not cfg.eval_files_dir:
            raise InputError("TFRecords hold no held-out part: give the records to evaluate as --eval_files_dir",
                             files[0])
        data = record_data(cfg, files, cfg.eval_batch_size, tokenizer)
        return data, f"TFRecords: {data.describe()}"
    data = text_stream(cfg, tokenizer, files, fraction, bool(fraction), cfg.eval_batch_size)
    if not data.num_blocks:
        raise InputError(f"no held-out document at --eval_fraction={fraction:g}", files[0])
    side = "every document" if not fraction else f"the {fraction:g} held out by a seeded hash of each document"
    return data, f"{data.corpus.scan.documents[bool(fraction)]} documents ({side}) -> {data.num_blocks} blocks"
