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


def test_the_core_names_no_job_setting():
    """A setting only one job has (e.g. featurize_workers, save_model_path, shard_id) never appears as a string in
    a core module: the core learns what to fingerprint, identify or claim from the roles in the config."""
    from bert_tf import config

    shared = {f.name for f in dataclasses.fields(config.SharedSettings)}
    job_only = set()
    for job, (_, config_class) in JOBS.items():
        cls = getattr(importlib.import_module(f"bert_tf.{job}.config"), config_class)
        job_only |= {f.name for f in dataclasses.fields(cls)} - shared
    generic = {"output_dir", "max_seq_length", "seed", "labels_file"}  # words the core uses in their own sense
    found = []
    for path in CORE_FILES:
        strings = {node.value for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
                   if isinstance(node, ast.Constant) and isinstance(node.value, str)}
        found += [f"{path.relative_to(ROOT)}: {name}" for name in sorted((job_only - generic) & strings)]
    assert found == []
