"""Every flagfile in flags/ parses with the script it is for (no unknown or malformed flag)."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import flagfile_config, script_config_type

ROOT = Path(__file__).resolve().parents[1]


def script_of(flagfile: Path) -> str:
    """The script a flagfile is for: *ner* ones run_ner.py's, *pretraining* ones run_pretraining.py's, the rest
    run_classifier.py's."""
    return next((f"run_{job}" for job in ("ner", "pretraining") if job in flagfile.name), "run_classifier")


def flagfiles_for(script: str) -> list:
    """The flagfiles of a script."""
    return [str(p) for p in sorted((ROOT / "flags").glob("*.flags")) if script_of(p) == script]


@pytest.mark.parametrize("script", ["run_ner", "run_classifier", "run_pretraining"])
def test_flagfiles_parse(script):
    """Each flagfile parses against the flags the script defines (bert_tf.config.define_flags of its config, as the
    script does; test_layout.py checks the script lists them): an unknown or malformed flag fails."""
    files = flagfiles_for(script)
    assert files, f"no flagfile for {script}.py"
    config_type = script_config_type(f"{script}.py")
    for path in files:
        assert isinstance(flagfile_config(config_type, f"--flagfile={path}"), config_type)


def test_published_setting_flagfiles_run_the_model_in_float32():
    """The published model ran in float32 (its --use_fp16 left it so): no published-setting flagfile turns on
    mixed precision, and the best-setting one trains as the published grid did (64 a step, 2 epochs)."""
    published = [p for p in sorted((ROOT / "flags").glob("*.flags")) if "published" in p.read_text().lower()]
    assert len(published) >= 3
    for path in published:
        flags = [line.strip() for line in path.read_text().splitlines() if line.startswith("--")]
        assert not any(f.startswith(("--use_amp", "--use_fp16")) for f in flags), path
    best = (ROOT / "flags" / "biobert_consensus_best.flags").read_text().splitlines()
    assert {"--train_batch_size=64", "--num_train_epochs=2", "--learning_rate=2e-5"} <= set(best)
