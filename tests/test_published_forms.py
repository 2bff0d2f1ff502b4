"""The published scripts' command-line forms the entry points accept: `--flag True` / `--flag False` for every
boolean flag of run_ner.py, run_classifier.py and run_pretraining.py (and `False` means false, where the published
argparse read any value as true)."""

from __future__ import annotations

import ast

import pytest

from conftest import ROOT, flagfile_config

from bert_tf import config
from bert_tf.classifier.config import ClassifierConfig
from bert_tf.ner.config import NerConfig
from bert_tf.pretraining.config import PretrainingConfig

CONFIGS = {"run_ner.py": NerConfig, "run_classifier.py": ClassifierConfig, "run_pretraining.py": PretrainingConfig}


def parsed(config_type: type, argv):
    """The config that `argv` (after the program name) gives, through the published boolean form's rewrite."""
    from absl import flags as absl_flags

    flag_values = absl_flags.FlagValues()
    config.define_flags(config_type, flag_values, module_name="tests")
    rewritten = config.published_booleans(["x", *argv], lambda name: config.is_boolean_flag(name, flag_values))
    flag_values(rewritten)
    return config.from_flags(config_type, flag_values), rewritten


@pytest.mark.parametrize("argv, expected", [
    (["--use_xla", "True"], True), (["--use_xla", "False"], False), (["--use_xla", "TRUE"], True),
    (["--use_xla", "false"], False), (["--use_xla=True"], True), (["--use_xla=False"], False),
    (["-use_xla", "True"], True), (["--use_xla"], True), (["--use_xla", "True", "--use_xla", "False"], False),
])
@pytest.mark.parametrize("script", sorted(CONFIGS))
def test_boolean_flags_take_the_published_true_false_form(script, argv, expected):
    cfg, _ = parsed(CONFIGS[script], argv)
    assert cfg.use_xla is expected


def test_only_boolean_flags_take_a_following_word():
    cfg, rewritten = parsed(NerConfig, ["--double_lr", "False", "--context_vote", "majority", "--labels_file", "true"])
    assert cfg.double_lr is False and cfg.labels_file == "true"
    assert rewritten == ["x", "--double_lr=false", "--context_vote", "majority", "--labels_file", "true"]
    assert config.published_booleans(["x", "--", "--double_lr", "True"], lambda name: True) == [
        "x", "--", "--double_lr", "True"]  # after `--` nothing is a flag


def test_every_script_parses_its_command_line_with_the_published_forms():
    for script in CONFIGS:
        tree = ast.parse((ROOT / script).read_text(encoding="utf-8"))
        calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call) and ast.unparse(node.func) == "app.run"]
        assert [ast.unparse(call) for call in calls] == ["app.run(main, flags_parser=config.parse_command_line)"]


def test_flagfile_config_reads_a_flagfile_and_flags_after_it(tmp_path):
    flagfile = tmp_path / "x.flags"
    flagfile.write_text("--epochs=3\n--double_lr\n")
    cfg = flagfile_config(NerConfig, f"--flagfile={flagfile}", "--epochs=4")
    assert (cfg.epochs, cfg.double_lr) == (4, True)
