"""NerConfig: the roles of run_ner.py's settings, its defaults resolved as the command line did, its checks, and
the typed settings a saved model keeps."""

from __future__ import annotations

import dataclasses

import pytest

from conftest import NER_QUICK, ROOT, flagfile_config

from bert_tf import config
from bert_tf.config import OPERATIONAL, OUTPUT, RESULT, role_of, settings_fields
from bert_tf.errors import InputError
from bert_tf.ner.config import PUBLISHED_NER_MODEL, NerConfig, check, normalized
from bert_tf.ner.model_settings import NerModelSettings

# The old hand-kept lists (resume.NOT_FINGERPRINTED, ownership.NOT_IDENTIFYING), restricted to run_ner.py's flags.
NOT_FINGERPRINTED = {"verbose", "verbose_tf", "log_every", "tensorboard", "overwrite_output_dir", "resume",
                     "save_checkpoints_steps", "keep_checkpoints", "num_workers", "distribution", "use_xla",
                     "deterministic", "do_predict", "predict_file", "predict_output", "horovod"}
NOT_IDENTIFYING = {"verbose", "verbose_tf", "log_every", "overwrite_output_dir", "resume", "num_workers",
                   "keep_checkpoints"}


def test_roles_are_the_old_lists():
    for field in settings_fields(NerConfig):
        expected = (OPERATIONAL if field.name in NOT_IDENTIFYING else
                    OUTPUT if field.name in NOT_FINGERPRINTED else RESULT)
        assert role_of(field) is expected, field.name


def test_display_settings_do_not_change_the_fingerprint_but_training_settings_do():
    base = NerConfig(data_path="d", save_model_path="o")
    shown = dataclasses.replace(base, verbose_tf=True, tensorboard=False, log_every=1, num_workers=8, use_xla=True)
    assert config.fingerprint(shown) == config.fingerprint(base)
    assert config.fingerprint(dataclasses.replace(base, learning_rate=1e-3)) != config.fingerprint(base)
    assert config.identity(dataclasses.replace(base, predict_file="x"), "run_ner.py") != \
        config.identity(base, "run_ner.py")


def test_defaults_resolve_as_the_command_line_did():
    assert normalized(NerConfig()).bert_model == PUBLISHED_NER_MODEL
    assert normalized(NerConfig(bert_config_file="c.json", init_checkpoint="m.ckpt")).bert_model is None
    assert normalized(NerConfig(bert_model="m", init_checkpoint="x")).bert_model == "m"
    assert NerConfig().trains and not NerConfig(do_predict=True).trains
    assert NerConfig(do_predict=True, do_train=True).trains and not NerConfig(do_train=False).trains
    assert (NerConfig().vote, NerConfig().decoding) == ("majority", "viterbi")


@pytest.mark.parametrize("changes, message", [
    ({"max_len": 4}, "--max_len=4: must be at least 8"),
    ({"epochs": 0}, "--epochs=0: must be at least 1"),
    ({"classifier_dropout": 1.0}, "--classifier_dropout=1.0: must be in [0, 1)"),
    ({"max_train_examples": -1}, "--max_train_examples=-1: must be 0 (all) or positive"),
    ({"learning_rate": 0.0}, "--learning_rate=0.0: must be positive"),
    ({"bucket_lengths": ["16", "abc"]}, "--bucket_lengths=16,abc: must be whole numbers of at least 8"),
])
def test_check_messages(changes, message):
    with pytest.raises(InputError) as raised:
        check(NerConfig(**changes))
    assert str(raised.value) == message


def test_saved_model_settings_win_unless_given():
    saved = NerModelSettings(64, "document", "central", "argmax")
    assert NerModelSettings.for_prediction(saved.meta(), NerConfig(), 512) == saved
    assert NerModelSettings.for_prediction(saved.meta(), NerConfig(decode="viterbi", max_len=32), 512) == \
        NerModelSettings(64, "document", "central", "viterbi")
    old = NerModelSettings.for_prediction({"flags": {}}, NerConfig(max_len=48), 512)  # saved before these keys
    assert old == NerModelSettings(48, "none", "majority", "viterbi")
    foreign = NerModelSettings.for_prediction({}, NerConfig(max_len=512), 128)  # a folder from another tool
    assert foreign.max_len == 128
    assert NerModelSettings.of_training(NerConfig(max_len=40), "none").meta() == {
        "max_len": 40, "context": "none", "context_vote": "majority", "decode": "viterbi"}


# ----- the published defaults, and the flagfiles that hold the quicker settings -------------------------------------

# train_bert_ner.py's argparse (DALAI-project/Train_BERT_NER): what `python train_bert_ner.py` trains.
PUBLISHED_DEFAULTS = {"data_path": "./data/", "save_model_path": "./checkpoint/", "max_len": 512, "learning_rate": 2e-5,
                      "gamma": 0.8, "weight_decay": 0.01, "epochs": 10, "batch_size": 24, "num_workers": 4,
                      "patience": 2, "freeze_layers": 0, "double_lr": False, "classifier_dropout": 0.3,
                      "num_validate_during_training": 1, "linear_scheduler": True}
# What `make demo-ner` trained before the defaults changed (flags/demo_ner.flags over the earlier defaults).
DEMO_RUN = {"learning_rate": 0.003, "weight_decay": 0.01, "seed": 13, "overwrite_output_dir": True,
            "data_path": "data/demo/ner", "save_model_path": "runs/demo_ner", "max_len": 128, "gamma": 0.9, "epochs": 2,
            "batch_size": 4, "bucket_by_length": True, "bucket_lengths": [], "num_workers": 2, "patience": 2,
            "freeze_layers": 0, "double_lr": True, "classifier_dropout": 0.1, "num_validate_during_training": 2,
            "linear_scheduler": True, "val_test_size": 0.1, "max_train_examples": 500}
# What `python run_ner.py` trained with no flags before (flags/ner_quick.flags keeps it).
EARLIER_DEFAULTS = {"max_len": 128, "learning_rate": 5e-5, "batch_size": 16, "epochs": 5, "patience": 3,
                    "classifier_dropout": 0.1, "gamma": 0.9, "num_workers": 2}


def test_no_flags_train_what_the_published_script_trains():
    values = config.values(NerConfig())
    assert {name: values[name] for name in PUBLISHED_DEFAULTS} == PUBLISHED_DEFAULTS


def test_the_demo_flagfile_gives_the_demo_run_it_gave():
    values = config.values(flagfile_config(NerConfig, f"--flagfile={ROOT / 'flags' / 'demo_ner.flags'}"))
    assert {name: values[name] for name in DEMO_RUN} == DEMO_RUN
    assert {name: value for name, value in values.items() if name not in DEMO_RUN} == {
        name: value for name, value in config.values(NerConfig()).items() if name not in DEMO_RUN}


def test_the_quick_flagfile_holds_the_earlier_defaults():
    values = config.values(flagfile_config(NerConfig, NER_QUICK))
    assert {name: values[name] for name in EARLIER_DEFAULTS} == EARLIER_DEFAULTS


@pytest.mark.parametrize("given, expected", [
    ({}, {"weight_decay": 0.01, "linear_scheduler": True, "gamma": 0.8}),
    ({"wd": 0.05}, {"weight_decay": 0.05, "linear_scheduler": True, "gamma": 0.8}),
    ({"scheduler": "linear", "linear_scheduler": False}, {"weight_decay": 0.01, "linear_scheduler": True, "gamma": 0.8}),
    ({"scheduler": "exponential"}, {"weight_decay": 0.01, "linear_scheduler": False, "gamma": 0.8}),
    ({"scheduler": "None", "gamma": 0.5}, {"weight_decay": 0.01, "linear_scheduler": False, "gamma": 1.0}),
])
def test_the_published_wd_and_scheduler_flags_set_what_they_name(given, expected):
    cfg = normalized(NerConfig(**given))
    assert {name: getattr(cfg, name) for name in expected} == expected


def test_the_published_flag_names_on_the_command_line():
    cfg = flagfile_config(NerConfig, "--wd=0.02", "--scheduler=none")
    assert (cfg.wd, cfg.scheduler) == (0.02, "None")
    with pytest.raises(InputError, match="--scheduler=constant: must be one of linear, exponential, None"):
        normalized(NerConfig(scheduler="constant"))
