"""Flags shared by run_ner.py and run_classifier.py (defined once here)."""

from __future__ import annotations

from typing import Optional

from absl import flags

from bert_tf.distribution import AMP_DTYPES, DISTRIBUTIONS


def define_shared_flags() -> None:
    """Define the flags both scripts accept."""
    flags.DEFINE_string("bert_model", None,
                        "Pretrained BERT: a Hugging Face Hub id (owner/name, resolved in the Hub cache, downloaded "
                        "when missing and online), a Hugging Face directory (config.json, model.safetensors, vocab.txt "
                        "or tokenizer.json), a TF1 checkpoint directory, a keras-hub preset (directory, name or "
                        "kaggle:// handle), or a model saved by bert-tf.")
    flags.DEFINE_string("revision", None, "With a Hub id in --bert_model: the branch, tag or commit to use "
                        "(default: main); run_config.json records the commit it resolved to.")
    flags.DEFINE_string("bert_config_file", None, "NVIDIA/Google style: bert_config.json of a TF1 checkpoint "
                        "(with --vocab_file and --init_checkpoint, instead of --bert_model).")
    flags.DEFINE_string("vocab_file", None, "NVIDIA/Google style: the checkpoint's vocab.txt.")
    flags.DEFINE_string("init_checkpoint", None, "NVIDIA/Google style: the TF1 checkpoint prefix "
                        "(e.g. model.ckpt-1000000) or its directory.")
    flags.DEFINE_bool("do_lower_case", None,
                      "Lower-case (and strip accents from) the input. Default: what the checkpoint's "
                      "tokenizer_config.json says (cased FinBERT/BioBERT: false).")
    flags.DEFINE_float("learning_rate", 5e-5, "Peak learning rate.")
    flags.DEFINE_float("weight_decay", 0.01, "AdamW weight decay (not applied to LayerNorm weights and biases).")
    flags.DEFINE_integer("seed", 42, "Random seed (weights of the new head, dropout, data order, splits).")
    flags.DEFINE_bool("use_xla", False, "Compile the training and prediction steps with XLA (jit_compile).")
    flags.DEFINE_bool("use_amp", False, "Mixed precision: the model computes in float16 (dynamic loss scaling) on "
                      "GPUs, bfloat16 on CPUs with native bfloat16 (AMX or AVX512-BF16); the run prints what it used. "
                      "Faster, but every probability is perturbed (a few labels near a tie flip): not the published "
                      "setting, whose model ran in float32.")
    flags.DEFINE_enum("amp_dtype", "auto", list(AMP_DTYPES), "With --use_amp: auto (float16 on GPUs, bfloat16 on "
                      "CPUs), float16, or bfloat16 (no loss scaling; GPUs of compute capability 8.0+ or a CPU).")
    flags.DEFINE_bool("overwrite_output_dir", False, "Allow writing into a non-empty output directory.")
    flags.DEFINE_enum("distribution", "auto", list(DISTRIBUTIONS),
                      "tf.distribute strategy: auto (mirrored with >1 GPU, else one device), one_device, "
                      "mirrored (all local GPUs), multi_worker (SLURM or TF_CONFIG).")
    flags.DEFINE_bool("do_predict", False, "Predict with a saved model (no training unless --do_train is given).")
    flags.DEFINE_integer("save_checkpoints_steps", 10000,
                         "Save the full training state every N steps (and at every epoch's end and on SIGTERM); 0: "
                         "only at epoch ends. A killed run resumes when the same command is run again. 10,000 as "
                         "the published code.")
    flags.DEFINE_bool("keep_checkpoints", False, "Keep the resume checkpoints (<output>/checkpoints) of a training "
                      "run that ended normally; by default they are deleted then (the saved model stays).")
    flags.DEFINE_bool("resume", True, "Resume from the training state in the output directory when there is one "
                      "(--noresume with --overwrite_output_dir starts over).")
    flags.DEFINE_bool("deterministic", False, "Enable TensorFlow op determinism (bitwise reproducible on CPU; slower).")
    flags.DEFINE_integer("log_every", 10, "Update the progress bar (and check the loss) every N steps.")
    flags.DEFINE_bool("verbose", True, "Print progress bars and per-epoch figures.")
    flags.DEFINE_bool("verbose_tf", False, "Show TensorFlow's own start-up and C++ log lines (hidden by default; "
                      "read from the command line before TensorFlow starts, see bert_tf/quiet.py).")
    flags.DEFINE_bool("tensorboard", True, "Write TensorBoard event files under <output>/tensorboard (training loss, "
                      "learning rate, throughput every --log_every steps; validation metrics); view them with "
                      "`tensorboard --logdir <output>/tensorboard`.")
    flags.DEFINE_string("class_weights", "none", "Loss weight per label: none; balanced (n / (k * count) from the "
                        "training labels); or a file of label<TAB>weight lines (unnamed labels: 1). The loss is "
                        "the weighted mean; evaluation is unweighted.")
    flags.DEFINE_bool("horovod", False, "The published Horovod launch: under mpiexec/mpirun (Open MPI or MPICH "
                      "variables) every rank becomes a worker of a multi-worker run on this node, pinned to the GPU of "
                      "its local rank; the batch size is per rank (global = batch x ranks). Alone: one process.")


def bert_model_or_trio(values) -> Optional[str]:
    """--bert_model, unless only its default is set and the NVIDIA trio (--bert_config_file, --vocab_file,
    --init_checkpoint) names the checkpoint instead."""
    trio = values.bert_config_file or values.vocab_file or values.init_checkpoint
    return None if trio and not values["bert_model"].present else values.bert_model
