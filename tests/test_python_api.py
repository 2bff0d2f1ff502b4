"""The jobs' Python API: a config built in Python, training in-process, prediction of plain Python lists."""

from __future__ import annotations

import ast

import pandas as pd

from conftest import quick_ner_config
from test_run_ner import write_learnable_set


def test_ner_python_api(tmp_path, minilm):
    """NerConfig -> bert_tf.ner.run.train -> predict_sentences: the model learned the synthetic entities (always-O
    has entity F1 0)."""
    from seqeval.metrics import f1_score

    from bert_tf.ner import run
    data = write_learnable_set(tmp_path / "data")
    cfg = quick_ner_config(bert_model=minilm, data_path=str(data), save_model_path=str(tmp_path / "out"), max_len=32,
                    epochs=4, batch_size=16, learning_rate=3e-4, seed=3, verbose=False, tensorboard=False)
    result = run.train(cfg)
    assert result.model_dir == str(tmp_path / "out" / "model")
    assert result.metrics["f1"] > 0.5, result.metrics["f1"]

    test = pd.read_csv(data / "test.csv")
    sentences = [ast.literal_eval(cell) for cell in test["tokens"]]
    gold = [ast.literal_eval(cell) for cell in test["tags"]]
    predicted = run.predict_sentences(result.output_dir, sentences)
    assert [len(p) for p in predicted] == [len(s) for s in sentences]
    always_o = f1_score(gold, [["O"] * len(s) for s in sentences])
    assert f1_score(gold, predicted) > always_o + 0.5, (f1_score(gold, predicted), always_o)


def test_the_readme_python_example_trains_a_model_that_learned(tmp_path, monkeypatch, capsys):
    """The README's Python block, run as it stands (from a folder where data/ is the repository's), in-process:
    the demo NER model beats always-O by a wide margin and tags the example sentence."""
    import re

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
    assert (tmp_path / "runs" / "api_ner" / "model").is_dir()
