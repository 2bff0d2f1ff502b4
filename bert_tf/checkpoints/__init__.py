"""Pretrained and fine-tuned BERT checkpoints: one loader for every job, one reader and writer per format.

`load_checkpoint(spec, ...)` is the only way a job loads a pretrained checkpoint: a Hugging Face Hub id at a
revision (downloaded by the chief only), a local folder in any format, a keras-hub preset, or NVIDIA's flag trio
(--bert_config_file, --vocab_file — or vocab.txt beside the config — and --init_checkpoint).

Modules, one role each:
    spec            CheckpointSpec: where a checkpoint is, as the settings say it
    checkpoint      Checkpoint (kind, folder, config, activation), BERT configs, activations
    names           canonical weight names, backbone slots, assigning weights into a BertBackbone
    locate          what --bert_model names (path, Hub id, preset), which format a folder holds, its tokenizer
    huggingface     Hugging Face weights (safetensors, tf_model.h5, pytorch_model.bin): read; config/tokenizer: write
    encoder         the encoder of a Hugging Face or TF1 checkpoint as a BertBackbone with its weights
    hf_task         Hugging Face token/sequence classifiers: write and read back (the saved-model format)
    tf1             Google/NVIDIA/BioBERT TF1 checkpoints and the published classifier head: read and write
    presets         keras-hub presets: backbone, tokenizer, masked-LM head
    bert_tf_format  bert-tf's own saved models (a Hugging Face task folder + bert_tf_model.json): save and load
    weights         a checkpoint's weights into Keras: backbone, new task model, masked-LM / next-sentence heads
    savedmodel      TensorFlow SavedModel exports
    export          the command line `python -m bert_tf.export` (= `python -m bert_tf.checkpoints.export`)
"""

from __future__ import annotations

from typing import Optional, Tuple

from bert_tf.checkpoints.bert_tf_format import (SAVED_MODEL_META, load_saved_model, resolve_model_dir,
                                                save_model, saved_model_under)
from bert_tf.checkpoints.checkpoint import (ACTIVATIONS, Checkpoint, max_positions,
                                            set_feedforward_activation)
from bert_tf.checkpoints.locate import find_checkpoint, load_pretrained
from bert_tf.checkpoints.spec import CheckpointSpec, trio_vocab_file
from bert_tf.checkpoints.weights import (build_task_model, load_backbone, read_masked_lm_head,
                                         read_next_sentence_head)
from bert_tf.errors import InputError
from bert_tf.tokenization import WordPieceTokenizer

__all__ = [
    "ACTIVATIONS", "Checkpoint", "CheckpointSpec", "SAVED_MODEL_META", "build_task_model", "check_positions",
    "find_checkpoint", "load_backbone", "load_checkpoint", "load_pretrained", "load_saved_model",
    "max_positions", "read_masked_lm_head", "read_next_sentence_head", "resolve_model_dir", "save_model",
    "saved_model_under", "set_feedforward_activation", "trio_vocab_file",
]


def check_positions(checkpoint: Checkpoint, length: int, length_name: str) -> None:
    """Bad input when --`length_name`=`length` exceeds the checkpoint's position embeddings (fine when unknown)."""
    positions = max_positions(checkpoint)
    if positions is not None and length > positions:
        raise InputError(f"--{length_name}={length} exceeds the model's {positions} position embeddings",
                         checkpoint.path)


def load_checkpoint(spec: CheckpointSpec, *, chief: bool = True, length: Optional[int] = None,
                    length_name: str = "") -> Tuple[Checkpoint, WordPieceTokenizer]:
    """The checkpoint `spec` names and its tokenizer, checked against the sequence `length` (the job's setting
    `length_name`, for the message). `chief`: whether this process may download a Hub snapshot (the others wait for it)."""
    checkpoint, tokenizer = load_pretrained(spec.bert_model, spec.bert_config_file, trio_vocab_file(spec),
                                            spec.init_checkpoint, spec.do_lower_case, spec.revision, chief)
    if length is not None:
        check_positions(checkpoint, length, length_name)
    return checkpoint, tokenizer
