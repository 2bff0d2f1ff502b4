"""The published scripts' command-line forms the entry points accept: `--flag True` / `--flag False` for every
boolean flag of run_ner.py, run_classifier.py and run_pretraining.py (and `False` means false, where the published
argparse read any value as true)."""

from __future__ import annotations

import ast

import pytest

from conftest import ROOT, flagfile_config

from bert_tf import config
from bert_tf.classifier.config import ClassifierConfig, check
from bert_tf.errors import InputError
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


# ----- the published rules for steps, task names and batches ---------------------------------------------------------

@pytest.mark.parametrize("examples, batch, epochs, expected", [
    (12_500_000, 256, 1, (48_828, 48_828, 1, 4_882)),  # the production run: 48,828 as published (rounded up: 48,829)
    (40, 16, 3, (2, 7, 4, 0)),  # int(40 / 16 * 3) = 7 full batches of 16: three epochs of 2 and one step more
    (10, 16, 3, (1, 1, 1, 0)),  # fewer examples than a batch: one partial batch
    (64, 64, 2.5, (1, 2, 2, 0)),
])
def test_classifier_steps_are_counted_as_published(examples, batch, epochs, expected):
    from bert_tf.classifier.fitting import training_steps

    steps = training_steps(ClassifierConfig(train_batch_size=batch, num_train_epochs=epochs), examples)
    assert tuple(steps) == expected


@pytest.mark.parametrize("given", ["consensus", "Consensus", "CONSENSUS"])
def test_task_name_is_read_in_any_case_as_published(given):
    assert flagfile_config(ClassifierConfig, f"--task_name={given}").task_name == "consensus"
    check(ClassifierConfig(task_name=given, do_predict=True, output_dir="out"))  # the Python API too


def test_an_unknown_task_name_is_refused():
    from absl.flags import IllegalFlagValueError

    with pytest.raises(IllegalFlagValueError, match="consensus"):
        flagfile_config(ClassifierConfig, "--task_name=NER")
    with pytest.raises(InputError) as refused:
        check(ClassifierConfig(task_name="NER", do_predict=True, output_dir="out"))
    assert str(refused.value) == "--task_name=NER: unknown task (known: consensus, any case)"


@pytest.mark.parametrize("processes, published_batch", [(1, 24), (2, 24), (4, 8)])
def test_ner_batch_is_global_where_accelerate_took_it_per_process(processes, published_batch):
    """`accelerate launch` with N processes trained batches of --batch_size per process (N x it a step); here
    --batch_size is the global batch, split across the N replicas: N x the published value gives each replica
    the published batch."""
    from types import SimpleNamespace

    from bert_tf.distribution import RunContext, replica_batch_sizes

    ours = processes * published_batch
    run = RunContext(SimpleNamespace(num_replicas_in_sync=processes), "float32", False)
    assert replica_batch_sizes(ours, processes) == [published_batch] * processes
    assert run.describe_batch(ours) == f"global {ours} = {processes} replica(s) x {published_batch}"
    assert replica_batch_sizes(published_batch, processes) == [published_batch // processes] * processes
    assert "per process" in dict((f.name, f.metadata["help"]) for f in config.settings_fields(NerConfig))["batch_size"]


@pytest.mark.parametrize("argv, message", [
    (["--task_name=NER"], "error: flag --task_name=NER: value should be one of <consensus>"),
    (["--wd", "0.01"], "error: Unknown command line flag 'wd'"),
])
def test_a_flag_absl_refuses_is_one_error_line_and_exit_status_2(argv, message, capsys):
    from absl import flags as absl_flags

    flag_values = absl_flags.FlagValues()
    config.define_flags(ClassifierConfig, flag_values, module_name="tests")
    with pytest.raises(SystemExit) as stopped:
        config.parse_command_line(["run_classifier.py", *argv], flag_values)
    assert stopped.value.code == 2 and capsys.readouterr().err.splitlines() == [message]
    assert config.parse_command_line(["run_classifier.py", "--use_xla", "True", "left"], flag_values) == [
        "run_classifier.py", "left"]
    assert flag_values.use_xla is True
