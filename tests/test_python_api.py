"""The jobs' Python API: a config built in Python, training in-process, prediction of plain Python lists."""

from __future__ import annotations

import ast
import os

import pandas as pd


def test_the_readme_python_example_trains_a_model_that_learned(tmp_path, monkeypatch, capsys):
    """The README's Python block, run as it stands (from a folder where data/ is the repository's), in-process:
    NerConfig -> bert_tf.ner.run.train -> predict_sentences. The demo NER model beats always-O (entity F1 0) by a
    wide margin, tags the example sentence, and its predictions of the test split's sentences as
    plain Python lists beat always-O by as wide a margin."""
    import re

    from seqeval.metrics import f1_score

    from conftest import ROOT

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Python API", 1)[1]
    block = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    (tmp_path / "data").symlink_to(ROOT / "data")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(block, "README.md", "exec"), namespace)
    result = namespace["result"]
    assert result.metrics["f1"] > 0.6, result.metrics  # always-O: entity F1 0
    printed = capsys.readouterr().out
    assert f"test F1 {result.metrics['f1']:.3f}" in printed
    tagged = ast.literal_eval(printed.strip().splitlines()[-1])
    assert len(tagged) == 1 and len(tagged[0]) == 6 and tagged[0][0] != "O"
    assert os.path.abspath(result.model_dir) == str(tmp_path / "runs" / "api_ner" / "model")
    assert os.path.isdir(result.model_dir)

    from bert_tf.ner import run

    test = pd.read_csv(ROOT / "data" / "demo" / "ner" / "test.csv")
    sentences = [ast.literal_eval(cell) for cell in test["tokens"]]
    gold = [ast.literal_eval(cell) for cell in test["tags"]]
    predicted = run.predict_sentences(result.output_dir, sentences)
    assert [len(p) for p in predicted] == [len(s) for s in sentences]
    always_o = f1_score(gold, [["O"] * len(s) for s in sentences])
    assert f1_score(gold, predicted) > always_o + 0.5, (f1_score(gold, predicted), always_o)
