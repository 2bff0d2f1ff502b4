"""NerConfig: the roles of run_ner.py's settings, its defaults resolved as the command line did, its checks, and
the typed settings a saved model keeps."""

from __future__ import annotations

import dataclasses

import pytest

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
