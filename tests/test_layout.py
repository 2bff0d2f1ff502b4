"""The layout the code keeps: thin entry scripts, a config and a runner per job, no flags read in the library, no
job setting named in the core, no grab-bag modules."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import re

import pytest

from conftest import ROOT

JOBS = {"ner": ("run_ner.py", "NerConfig"), "classifier": ("run_classifier.py", "ClassifierConfig"),
        "pretraining": ("run_pretraining.py", "PretrainingConfig")}
CORE_FILES = [p for p in (ROOT / "bert_tf").rglob("*.py") if p.parent.name not in JOBS]


def library_files():
    return sorted((ROOT / "bert_tf").rglob("*.py"))


def test_the_library_reads_no_absl_flags():
    """Settings reach the library as typed configs: `FLAGS.` stands only where flags are defined from them."""
    readers = [str(p.relative_to(ROOT)) for p in library_files()
               if re.search(r"\bFLAGS\s*[.\[]", p.read_text(encoding="utf-8")) and p.name != "config.py"]
    assert readers == []


def test_no_grab_bag_module_names():
    assert [str(p.relative_to(ROOT)) for p in library_files() if p.stem in ("task", "utils", "misc", "helpers")] == []


@pytest.mark.parametrize("job", sorted(JOBS))
def test_each_job_has_a_config_and_a_runner(job):
    script, config_class = JOBS[job]
    config_module = importlib.import_module(f"bert_tf.{job}.config")
    runner = importlib.import_module(f"bert_tf.{job}.run")
    assert dataclasses.is_dataclass(getattr(config_module, config_class))
    assert callable(getattr(runner, "run"))
    tree = ast.parse((ROOT / script).read_text(encoding="utf-8"))
    functions = [node.name for node in tree.body if isinstance(node, ast.FunctionDef)]
    assert functions == ["main"], f"{script} holds job logic: {functions}"
    assert len((ROOT / script).read_text(encoding="utf-8").splitlines()) <= 120


def test_every_setting_declares_its_role():
    from bert_tf import config

    for job, (_, config_class) in JOBS.items():
        cls = getattr(importlib.import_module(f"bert_tf.{job}.config"), config_class)
        for field in dataclasses.fields(cls):
            assert field.metadata.get("role") in set(config.Role), f"{config_class}.{field.name}"
            assert field.metadata.get("help"), f"{config_class}.{field.name} has no help text"


# Strings of the core that are a job setting's name but mean something else there.
OTHER_MEANINGS = {
    "gamma": "a LayerNorm weight in TF1 checkpoint names",
    "classifier_dropout": "a key of Hugging Face's config.json",
    "pooling": "a key of a saved model's settings",
    "output_dir": "the export command's own argument",
}


def _strings(path):
    """Every string constant of a module, f-string parts included."""
    return {node.value for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(node, ast.Constant) and isinstance(node.value, str)}


def test_the_core_names_no_job_setting():
    """A setting only one job has (e.g. featurize_workers, save_model_path, shard_id) never appears in a core
    module, as a name or as a --flag in a message: the core learns what to fingerprint, identify or claim from
    the roles in the config, and the job passes its own names."""
    from bert_tf import config

    shared = {f.name for f in dataclasses.fields(config.SharedSettings)}
    names = [{f.name for f in dataclasses.fields(getattr(importlib.import_module(f"bert_tf.{job}.config"), cls))}
             for job, (_, cls) in JOBS.items()]
    job_only = set().union(*names) - set.intersection(*names) - shared  # do_train, output...: every job's
    found = []
    for path in CORE_FILES:
        strings = _strings(path)
        named = {n for n in job_only - set(OTHER_MEANINGS) if n in strings}
        flagged = {n for n in job_only - set(OTHER_MEANINGS) for s in strings if re.search(rf"--{n}\b", s)}
        found += [f"{path.relative_to(ROOT)}: {name}" for name in sorted(named | flagged)]
    assert found == []


def test_each_script_help_lists_its_own_flags():
    """`python run_X.py --help` lists the flags of its config (absl lists a script's key flags only: they are
    defined from the config as the script's own)."""
    import subprocess
    import sys

    processes = {script: subprocess.Popen([sys.executable, script, "--help"], cwd=ROOT, stdout=subprocess.PIPE,
                                          stderr=subprocess.STDOUT, text=True)
                 for script, _ in JOBS.values()}
    for job, (script, config_class) in JOBS.items():
        out = processes[script].communicate(timeout=300)[0]
        cls = getattr(importlib.import_module(f"bert_tf.{job}.config"), config_class)
        listed = set(re.findall(r"^\s+--(?:\[no\])?(\w+):", out, re.M))
        flagged = {f.name for f in dataclasses.fields(cls) if f.metadata.get("flag", True)}  # not Python-only fields
        assert flagged <= listed, (script, out[-2000:])
