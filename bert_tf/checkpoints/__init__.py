"""Pretrained and fine-tuned BERT checkpoints: one loader for every job, one reader and writer per format.

`load_checkpoint(spec, ...)` is the only way a job loads a pretrained checkpoint: a Hugging Face Hub id at a
revision (downloaded by the chief only), a local folder in any format, a keras-hub preset, or NVIDIA's flag trio
(--bert_config_file, --vocab_file — or vocab.txt beside the config — and --init_checkpoint).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Optional, Tuple

from bert_tf import pretrained
from bert_tf.errors import InputError
from bert_tf.pretrained import Checkpoint  # noqa: F401  (the package's public type)
from bert_tf.tokenization import WordPieceTokenizer


@dataclasses.dataclass(frozen=True)
class CheckpointSpec:
    """Where a pretrained checkpoint is: --bert_model (path, Hub id, preset) at --revision, or NVIDIA's trio;
    --do_lower_case (None: the checkpoint's tokenizer decides)."""

    bert_model: Optional[str] = None
    revision: Optional[str] = None
    bert_config_file: Optional[str] = None
    vocab_file: Optional[str] = None
    init_checkpoint: Optional[str] = None
    do_lower_case: Optional[bool] = None

    @property
    def uses_trio(self) -> bool:
        """True when NVIDIA's trio names the checkpoint."""
        return bool(self.bert_config_file or self.vocab_file or self.init_checkpoint)


def trio_vocab_file(spec: CheckpointSpec) -> Optional[str]:
    """--vocab_file, or vocab.txt beside --bert_config_file when only the config and checkpoint are given."""
    if spec.vocab_file or not spec.bert_config_file:
        return spec.vocab_file
    beside = os.path.join(os.path.dirname(os.path.abspath(spec.bert_config_file)), "vocab.txt")
    if not os.path.isfile(beside):
        raise InputError("no vocabulary: give --vocab_file (no vocab.txt beside the config)", spec.bert_config_file)
    return beside


def check_positions(checkpoint: Checkpoint, length: int, length_name: str) -> None:
    """Bad input when --`length_name`=`length` exceeds the checkpoint's position embeddings (fine when unknown)."""
    positions = pretrained.max_positions(checkpoint)
    if positions is not None and length > positions:
        raise InputError(f"--{length_name}={length} exceeds the model's {positions} position embeddings",
                         checkpoint.path)


def load_checkpoint(spec: CheckpointSpec, *, chief: bool = True, length: Optional[int] = None,
                    length_name: str = "max_seq_length") -> Tuple[Checkpoint, WordPieceTokenizer]:
    """The checkpoint `spec` names and its tokenizer, checked against the sequence `length` (flag `length_name`,
    for the message). `chief`: whether this process may download a Hub snapshot (the others wait for it)."""
    checkpoint, tokenizer = pretrained.load_pretrained(spec.bert_model, spec.bert_config_file, trio_vocab_file(spec),
                                                       spec.init_checkpoint, spec.do_lower_case, spec.revision, chief)
    if length is not None:
        check_positions(checkpoint, length, length_name)
    return checkpoint, tokenizer
