"""A quiet start: on a CPU machine the scripts print only their own lines; --verbose_tf shows TensorFlow's."""

from __future__ import annotations

import pytest

from bert_tf.quiet import verbose_requested
from conftest import run_script

NOISE = ("cuda", "cuinit", "onednn", "absl::initializelog", "cpu_feature_guard")


def test_a_run_that_starts_the_devices_prints_only_its_own_error(tmp_path):
    (tmp_path / "in.conll").write_text("hello\nworld\n")
    (tmp_path / "model").mkdir()
    done = run_script(["run_ner.py", "--do_predict", f"--save_model_path={tmp_path / 'model'}",
                       f"--predict_file={tmp_path / 'in.conll'}", f"--predict_output={tmp_path / 'out.csv'}"])
    assert done.returncode == 2
    lines = done.stderr.splitlines()
    assert not [line for line in lines if any(word in line.lower() for word in NOISE)], done.stderr
    assert lines == [f"error: {tmp_path / 'model'}: no saved bert-tf model here (no bert_tf_model.json)"]


@pytest.mark.parametrize("argv, verbose", [
    (["run_ner.py"], False), (["x", "--verbose_tf"], True), (["x", "--verbose_tf=false"], False),
    (["x", "--verbose_tf", "--noverbose_tf"], False), (["x", "-verbose_tf=1"], True),
    (["x", "--", "--verbose_tf"], False), (["x", "--verbose_tfx"], False),
])
def test_verbose_flag_is_read_from_the_command_line(argv, verbose):
    assert verbose_requested(argv) is verbose
