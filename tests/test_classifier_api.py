"""The classifier's Python API: how a saved model's settings meet a config's (train, evaluate and predict from Python:
test_run_classifier.py, beside the command line's run)."""

from __future__ import annotations


def test_saved_model_settings_win_and_a_differing_setting_is_said_once(capsys):
    from bert_tf.classifier import model_settings

    saved = {"max_seq_length": 64, "replace_span": "[unused1]", "temperature": 1.0, "fitted_temperature": 1.5,
             "collapsed": False, "global_step": 12}
    settings = model_settings.resolve(saved, 128, None, "/models/clf", lengths_given=False)
    assert (settings.max_seq_length, settings.replace_span, settings.fitted_temperature, settings.global_step) == (
        64, "[unused1]", 1.5, 12)
    assert settings.model_path == "/models/clf" and capsys.readouterr().err == ""
    settings = model_settings.resolve(saved, 256, "[unused1]", "/models/clf", lengths_given=True)
    assert settings.max_seq_length == 64
    assert capsys.readouterr().err.splitlines() == [
        "note: /models/clf: --max_seq_length=256 is not applied: the model was trained with max_seq_length 64, "
        "which its features follow"]
    old = model_settings.resolve({}, 128, "[unused2]", "/models/old", lengths_given=True)  # saved before the keys
    assert (old.max_seq_length, old.replace_span, old.temperature, old.folded_temperature) == (
        128, "[unused2]", None, 1.0)
