"""Where a pretrained checkpoint is, as the settings say it (no loading here, so bert_tf.config can name it)."""

from __future__ import annotations

import dataclasses
import os
from typing import Optional

from bert_tf.errors import InputError


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

