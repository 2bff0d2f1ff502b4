"""--verbose_tf is read from the command line before absl parses it. The quiet start itself is checked end to end
in test_raw_text.py (a real prediction run whose stderr holds none of TensorFlow's start-up lines)."""

from __future__ import annotations

import pytest

from bert_tf.quiet import verbose_requested


@pytest.mark.parametrize("argv, verbose", [
    (["run_ner.py"], False), (["x", "--verbose_tf"], True), (["x", "--verbose_tf=false"], False),
    (["x", "--verbose_tf", "--noverbose_tf"], False), (["x", "-verbose_tf=1"], True),
    (["x", "--", "--verbose_tf"], False), (["x", "--verbose_tfx"], False),
    (["x", "--verbose_tf", "False"], False), (["x", "--verbose_tf", "TRUE"], True),
])
def test_verbose_flag_is_read_from_the_command_line(argv, verbose):
    assert verbose_requested(argv) is verbose
