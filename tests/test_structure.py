"""The package's shape: every module imports on its own, in any order, and no import cycle exists."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def package_modules() -> list:
    """Dotted names of every module of bert_tf, sorted."""
    names = []
    for path in sorted((ROOT / "bert_tf").rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names.append(".".join(parts))
    return names


def test_every_module_imports_in_a_fresh_interpreter_in_either_order():
    """All modules imported alphabetically, then in reverse, each order in a new interpreter (a module that
    works only when another was imported before it fails in one of them)."""
    script = ("import importlib, sys\n"
              "for name in sys.argv[1:]:\n"
              "    importlib.import_module(name)\n"
              "print(len(sys.argv) - 1)\n")
    modules = package_modules()
    assert "bert_tf.checkpoints.tf1" in modules and "bert_tf.ner.evaluation" in modules
    for order in (modules, modules[::-1]):
        done = subprocess.run([sys.executable, "-c", script, *order], cwd=ROOT, capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.split()[-1] == str(len(modules))


def test_no_import_cycle_even_through_function_level_imports():
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "check_imports.py")], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "no import cycle" in done.stdout


def test_cycle_checker_finds_a_cycle():
    sys.path.insert(0, str(ROOT / "scripts"))
    import check_imports

    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    cycle = check_imports.find_cycle(graph)
    assert cycle is not None and cycle[0] == cycle[-1] and set(cycle) == {"a", "b", "c"}
    assert check_imports.find_cycle({"a": {"b"}, "b": set()}) is None


def test_library_holds_no_test_machinery():
    text = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "bert_tf").rglob("*.py"))
    for name in ("make_random_hf_checkpoint", "write_tf1_checkpoint", "BERT_TF_FAULT", "inspect.signature"):
        assert name not in text, name


def test_crossing_checker_finds_a_job_package_importing_another():
    sys.path.insert(0, str(ROOT / "scripts"))
    import check_imports

    graph = {"bert_tf.ner.evaluation": {"bert_tf.metrics", "bert_tf.classifier.calibration"},
             "bert_tf.metrics": set(), "bert_tf.training": {"bert_tf.ner.data"},
             "bert_tf.classifier.calibration": {"bert_tf.metrics"}, "bert_tf.ner.data": set()}
    assert check_imports.crossing_edges(graph) == ["bert_tf.ner.evaluation -> bert_tf.classifier.calibration",
                                                   "bert_tf.training -> bert_tf.ner.data"]
    del graph["bert_tf.ner.evaluation"], graph["bert_tf.training"]
    assert check_imports.crossing_edges(graph) == []


def test_jobs_live_in_their_packages():
    """The NER and classifier modules are in bert_tf/ner/ and bert_tf/classifier/, not in the core."""
    modules = set(package_modules())
    for name in ("data", "windowing", "decoding", "rows", "batching", "prediction", "evaluation", "entities", "metrics",
                 "outputs", "config", "run", "training_run", "model_settings", "raw_text", "sentences", "brat"):
        assert f"bert_tf.ner.{name}" in modules, name
    for name in ("data", "features", "feature_cache", "config", "run", "inputs", "evaluation", "calibration",
                 "prediction_files", "corpus", "blocklists"):
        assert f"bert_tf.classifier.{name}" in modules, name
    assert not {"bert_tf.ner_context", "bert_tf.blocklists", "bert_tf.corpus", "bert_tf.data"} & modules
