"""run_ner.py end to end: training that learns, every output, reload, prediction, bad input, real data."""

from __future__ import annotations

import json
import os
import random
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import NER_QUICK, check_png, error_lines, quick_ner_config, run_in_process, run_script

# Every entity word is a person, a place or an organisation depending on the words around it (and, in documents,
# on the document): a per-word lookup table gets about a third of the entities right.
ENTITY_WORDS = ["alice", "bob", "carol", "dave", "paris", "rome", "oslo", "lima"]


def _mention(rng: random.Random, kind: str):
    """One entity mention with the words that say its type: PER after 'hello'/'met', LOC after 'went to'/'went
    in', ORG as 'at W corp'; the same entity words in all three."""
    word = rng.choice(ENTITY_WORDS)
    if kind == "PER":
        return [rng.choice(["hello", "met"]), word], ["O", "B-PER"]
    if kind == "LOC":
        return ["went", rng.choice(["to", "in"]), word], ["O", "O", "B-LOC"]
    return ["at", word, "corp"], ["O", "B-ORG", "I-ORG"]


def _sentence(rng: random.Random, doc_kind: str = ""):
    """A sentence of 1-3 parts, mentions of one type (the words around them say which) and filler words; in a
    document of kind `doc_kind` (PER or LOC) its mentions are of that type, some bare ('x W'): only the document's
    other sentences tell what those are."""
    kind = doc_kind or rng.choice(["PER", "LOC", "ORG"])
    tokens, tags = [], []
    for _ in range(rng.randint(1, 3)):
        part = rng.choice(["mention", "filler"] + (["bare"] if doc_kind else []))
        if part == "bare":
            words, labels = [rng.choice(["x", "y", "z"]), rng.choice(ENTITY_WORDS)], ["O", f"B-{doc_kind}"]
        elif part == "filler":
            n = rng.randint(1, 4)
            words, labels = [rng.choice(["x", "y", "z", "the", "and"]) for _ in range(n)], ["O"] * n
        else:
            words, labels = _mention(rng, kind)
        tokens += words
        tags += labels
    tokens.append(".")
    tags.append("O")
    return tokens, tags


def lookup_table_tags(train, sentences):
    """The per-word lookup-table baseline: each word's most frequent tag in `train` (a list of (tokens, tags)),
    O for unseen words; its tags for `sentences`."""
    from collections import Counter

    counts = {}
    for tokens, tags in train:
        for word, tag in zip(tokens, tags):
            counts.setdefault(word, Counter())[tag] += 1
    table = {word: c.most_common(1)[0][0] for word, c in counts.items()}
    return [[table.get(word, "O") for word in tokens] for tokens in sentences]


def lookup_table_f1(train, test) -> float:
    """The lookup table's entity F1 on `test` (seqeval, strict IOB2: independent of bert_tf's metrics)."""
    from seqeval.metrics import f1_score
    from seqeval.scheme import IOB2

    predicted = lookup_table_tags(train, [tokens for tokens, _ in test])
    return float(f1_score([list(tags) for _, tags in test], predicted, mode="strict", scheme=IOB2))


def read_split(directory: Path, split: str):
    """The (tokens, tags) rows of directory/split.csv."""
    frame = pd.read_csv(directory / f"{split}.csv")
    return [(eval_list(t), eval_list(g)) for t, g in zip(frame.tokens, frame.tags)]


def write_learnable_set(directory: Path, sizes=(("train", 160), ("val", 40), ("test", 40)), seed=0) -> Path:
    """train/val/test CSVs of the learnable pattern, written the way pandas writes list cells."""
    rng = random.Random(seed)
    directory.mkdir(parents=True, exist_ok=True)
    for split, n in sizes:
        rows = [_sentence(rng) for _ in range(n)]
        pd.DataFrame({"tokens": [r[0] for r in rows], "tags": [r[1] for r in rows]}).to_csv(
            directory / f"{split}.csv", index=False)
    return directory


TRAIN_FLAGS = [NER_QUICK, "--max_len=32", "--epochs=7", "--batch_size=4", "--learning_rate=3e-3", "--patience=2",
               "--num_validate_during_training=2", "--seed=3", "--log_every=5"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_checkpoint):
    """One real training run of run_ner.py on the learnable set (shared by the tests below)."""
    base = tmp_path_factory.mktemp("ner_e2e")
    data = write_learnable_set(base / "data", sizes=(("train", 160), ("val", 80), ("test", 80)))
    out = base / "out"
    process = run_script(["run_ner.py", NER_QUICK, f"--bert_model={tiny_checkpoint}", f"--data_path={data}",
                          f"--save_model_path={out}", *TRAIN_FLAGS])
    assert process.returncode == 0, process.stderr[-3000:]
    return data, out, process


def test_training_learns_and_writes_every_output(trained):
    data, out, process = trained
    for name in ("loss.png", "accuracy.png", "f1.png"):
        check_png(out / name)
    for name in ("history.csv", "test_results.json", "test_report.txt", "run_config.json",
                 "model/bert_tf_model.json", "model/config.json", "model/model.safetensors", "model/vocab.txt"):
        assert (out / name).is_file(), name
    results = json.loads((out / "test_results.json").read_text())
    table = lookup_table_f1(read_split(data, "train"), read_split(data, "test"))
    assert results["f1"] > 0.9 and results["f1"] > table + 0.4, (results, table)  # the table: about 0.35
    assert {"loss", "accuracy", "precision", "recall", "f1"} <= set(results)
    assert {"accuracy", "precision", "recall", "f1"} <= set(results["without_o"])
    assert set(results["per_class"]) == {"LOC", "ORG", "PER"}
    history = pd.read_csv(out / "history.csv")
    val = history[history.split == "val"]
    assert len(val) >= 2 * 2 and set(val.end_of_epoch) == {True, False}  # mid-epoch validations recorded
    train_epochs = history[history.split == "train"].epoch.tolist()
    assert train_epochs == list(range(1, len(train_epochs) + 1))
    assert "Test set" in process.stdout and "without O" in process.stdout
    assert re.search(r"validation at epoch 0\.[1-9]\d \(step", process.stdout)


def test_reloaded_model_predicts_what_was_reported(trained, capsys):
    """Predicting the test file with the saved model reproduces the test F1 written after training."""
    from bert_tf.ner.metrics import ner_metrics

    data, out, _ = trained
    predictions = out / "preds" / "test_predictions.csv"
    process = run_in_process(["run_ner.py", NER_QUICK, "--do_predict", f"--save_model_path={out}", "--context=document",
                              f"--predict_file={data / 'test.csv'}", f"--predict_output={predictions}"], capsys)
    assert process.returncode == 0, process.stderr[-3000:]
    said = "context none (document context asked for, but the data has no document ids"
    assert f"warning: {said}" in process.stderr and said in process.stdout  # what really runs
    gold = pd.read_csv(data / "test.csv")
    pred = pd.read_csv(predictions)
    parse = lambda col: [eval_list(x) for x in col]  # noqa: E731
    assert parse(pred.tokens) == parse(gold.tokens)
    metrics = ner_metrics(parse(gold.tags), parse(pred.tags))
    reported = json.loads((out / "test_results.json").read_text())
    assert metrics["f1"] == reported["f1"] and metrics["accuracy"] == reported["accuracy"]
    conll = (out / "preds" / "test_predictions.conll").read_text().strip().split("\n\n")
    assert len(conll) == len(gold)
    jsonl = [json.loads(line) for line in (out / "preds" / "test_predictions.jsonl").read_text().splitlines()]
    assert len(jsonl) == len(gold) and all("entities" in d for d in jsonl)
    from bert_tf.errors import InputError
    from bert_tf.ner import run
    from bert_tf.ner.config import NerConfig

    before = {p.name: p.read_bytes() for p in predictions.parent.iterdir()}
    with pytest.raises(InputError, match="--overwrite_output_dir"):  # the same prediction again: refused (in-process)
        run.run(NerConfig(do_predict=True, save_model_path=str(out), predict_file=str(data / "test.csv"),
                          predict_output=str(predictions), verbose=False))
    assert {p.name: p.read_bytes() for p in predictions.parent.iterdir()} == before


def eval_list(text: str):
    import ast

    return ast.literal_eval(text)


def test_reload_gives_identical_logits(tmp_path, tiny_checkpoint):
    import tensorflow as tf

    from bert_tf import checkpoints, optimization
    from bert_tf.tokenization import WordPieceTokenizer
    from bert_tf.training import Trainer

    checkpoint = checkpoints.find_checkpoint(tiny_checkpoint)
    task = checkpoints.build_task_model(checkpoint, WordPieceTokenizer.from_model_dir(tiny_checkpoint),
                                   ["O", "B-X"], "token", 0.1)
    rng = np.random.default_rng(0)
    batch = {"token_ids": rng.integers(5, 30, (3, 9)).astype(np.int32), "padding_mask": np.ones((3, 9), np.int32),
             "segment_ids": np.zeros((3, 9), np.int32), "labels": rng.integers(0, 2, (3, 9)).astype(np.int32)}
    trainer = Trainer(task.model, optimization.make_optimizer("adamw", 1e-2, 0.01), tf.distribute.get_strategy(),
                      verbose=False)
    trainer.fit(lambda epoch, first: (tf.data.Dataset.from_tensors(batch), 1), epochs=2, validations_per_epoch=0)
    features = {k: batch[k] for k in ("token_ids", "padding_mask", "segment_ids")}
    before = task.model(features, training=False).numpy()
    checkpoints.save_model(task, str(tmp_path / "model"))
    reloaded = checkpoints.load_saved_model(str(tmp_path))
    after = reloaded.model(features, training=False).numpy()
    assert np.array_equal(before, after)
    assert reloaded.labels == ["O", "B-X"] and reloaded.activation == "gelu_exact"


def test_single_file_is_split_and_written(tmp_path, tiny_checkpoint):
    data = tmp_path / "data"
    data.mkdir()
    frames = [pd.read_csv(p) for p in sorted(write_learnable_set(tmp_path / "src").glob("*.csv"))]
    pd.concat(frames).to_csv(data / "data.csv", index=False)  # 240 rows
    out = tmp_path / "out"
    process = run_script(["run_ner.py", NER_QUICK, f"--bert_model={tiny_checkpoint}", f"--data_path={data}",
                          f"--save_model_path={out}", "--val_test_size=0.125", "--epochs=1", "--max_len=32",
                          "--batch_size=16", "--use_amp"])
    assert process.returncode == 0, process.stderr[-3000:]
    sizes = {split: len(pd.read_csv(out / f"{split}.csv")) for split in ("train", "val", "test")}
    assert sizes == {"train": 180, "val": 30, "test": 30}
    # --use_amp: the run says which precision this machine got (from /proc/cpuinfo here, not bert_tf's probe)
    flags = set(Path("/proc/cpuinfo").read_text().split()) if Path("/proc/cpuinfo").is_file() else set()
    if flags & {"amx_bf16", "avx512_bf16"}:
        assert "mixed_bfloat16 (CPU with" in process.stdout
    else:
        assert "float32 (--use_amp: no GPU is visible and this CPU has no native bfloat16)" in process.stdout


def _bad_tag(base: Path, tiny_checkpoint: str):
    data = write_learnable_set(base / "data")
    lines = (data / "val.csv").read_text().splitlines()
    lines[3] = lines[3].replace("'B-PER'", "'PERSON'", 1).replace("'B-LOC'", "'PLACE'", 1)
    (data / "val.csv").write_text("\n".join(lines) + "\n")
    return data, tiny_checkpoint, {}


def _unseen_tag(base: Path, tiny_checkpoint: str):
    data = write_learnable_set(base / "data")
    test = pd.read_csv(data / "test.csv")
    test.loc[0, "tags"] = str(["B-DATE"] * len(eval_list(test.loc[0, "tokens"])))
    test.to_csv(data / "test.csv", index=False)
    return data, tiny_checkpoint, {}


def _non_empty_output(base: Path, tiny_checkpoint: str):
    (base / "out").mkdir(parents=True)
    (base / "out" / "keep.txt").write_text("precious")
    return write_learnable_set(base / "data"), tiny_checkpoint, {}


def _no_weights(base: Path, tiny_checkpoint: str):
    import shutil

    shutil.copytree(tiny_checkpoint, base / "model")
    (base / "model" / "model.safetensors").unlink()
    return write_learnable_set(base / "data"), str(base / "model"), {}


def _long_max_len(base: Path, tiny_checkpoint: str):
    return write_learnable_set(base / "data"), tiny_checkpoint, {"max_len": 512}


def _bad_buckets(base: Path, tiny_checkpoint: str):
    return write_learnable_set(base / "data"), tiny_checkpoint, {"bucket_lengths": ["16", "abc"]}


BAD_RUNS = {"bad_tag": _bad_tag, "unseen_tag": _unseen_tag, "non_empty_output": _non_empty_output,
            "no_weights": _no_weights, "long_max_len": _long_max_len, "bad_buckets": _bad_buckets}


def _bad_run(name: str, root: Path, tiny_checkpoint: str):
    """Case `name` of BAD_RUNS run in-process by the runner (bert_tf.ner.run.run): (its InputError, data, out)."""
    from bert_tf.errors import InputError
    from bert_tf.ner import run
    data, model, extra = BAD_RUNS[name](root / name, tiny_checkpoint)
    out = root / name / "out"
    cfg = quick_ner_config(**{"bert_model": model, "data_path": str(data), "save_model_path": str(out), "epochs": 1,
                       "max_len": 32, "verbose": False, **extra})
    with pytest.raises(InputError) as raised:
        run.run(cfg)
    return raised.value, data, out


@pytest.fixture
def bad_run(tmp_path, tiny_checkpoint):
    """Run a bad-input case of BAD_RUNS in-process: name -> (InputError, data folder, output folder)."""
    return lambda name: _bad_run(name, tmp_path, tiny_checkpoint)


def test_bad_tag_names_file_and_line_and_writes_nothing(bad_run):
    error, data, out = bad_run("bad_tag")
    assert str(error).startswith(f"{data / 'val.csv'}:4:"), str(error)
    assert not out.exists()


def test_tags_unseen_in_training_are_listed(bad_run):
    error, data, out = bad_run("unseen_tag")
    message = str(error)
    assert "B-DATE" in message and "--labels_file" in message
    assert f"{data / 'test.csv'}:2:" in message
    assert not out.exists()


def test_non_empty_output_is_not_overwritten(bad_run):
    error, _, out = bad_run("non_empty_output")
    assert "--overwrite_output_dir" in str(error)
    assert os.listdir(out) == ["keep.txt"]


def test_model_without_weights_is_explained(bad_run):
    error, _, out = bad_run("no_weights")
    assert "model.safetensors" in str(error)
    assert not out.exists()


def test_max_len_beyond_position_embeddings(bad_run):
    error, _, _ = bad_run("long_max_len")
    assert "128 position embeddings" in str(error)


def test_bad_bucket_lengths_are_refused(bad_run):
    error, _, out = bad_run("bad_buckets")
    assert "--bucket_lengths=16,abc" in str(error)
    assert not out.exists()


def test_negative_max_train_examples_is_refused(tmp_path, tiny_checkpoint):
    """The command line: one error line, exit status 2, nothing written."""
    data, out = write_learnable_set(tmp_path / "data"), tmp_path / "out"
    process = run_script(["run_ner.py", NER_QUICK, f"--bert_model={tiny_checkpoint}", f"--data_path={data}",
                          f"--save_model_path={out}", "--epochs=1", "--max_len=32", "--max_train_examples=-1"])
    assert process.returncode == 2 and error_lines(process) == [
        "error: --max_train_examples=-1: must be 0 (all) or positive"]
    assert "Traceback" not in process.stderr
    assert not out.exists()


def test_bc5cdr_real_data_beats_the_lookup_table(tmp_path, shared_data, minilm, capsys):
    """BC5CDR (chemicals) converted to the CSV layout trains with MiniLM: its entity F1 beats a per-word lookup
    table's (about 0.11 here; always-O scores 0) by a margin, its word accuracy always-O's (0.958 here)."""
    from bert_tf.ner import data as ner_data

    sentences = ner_data.read_conll(str(shared_data / "bc5cdr_chem" / "train.tsv"), bare_tag_type="Chemical")
    data = tmp_path / "bc5cdr"
    for split, part in (("train", sentences[:256]), ("val", sentences[256:336]), ("test", sentences[336:416])):
        ner_data.write_ner_csv(str(data / f"{split}.csv"), part)
    out = tmp_path / "out"
    process = run_in_process(["run_ner.py", NER_QUICK, f"--bert_model={minilm}", f"--data_path={data}",
                              f"--save_model_path={out}", "--max_len=48", "--epochs=1", "--batch_size=16",
                              "--learning_rate=2e-4", "--num_validate_during_training=2", "--log_every=5"], capsys)
    assert process.returncode == 0, process.stderr[-3000:]
    results = json.loads((out / "test_results.json").read_text())
    assert set(results["per_class"]) == {"Chemical"} and results["num_sentences"] == 80
    test = read_split(data, "test")
    always_o = sum(t == "O" for _, tags in test for t in tags) / sum(len(tags) for _, tags in test)
    table = lookup_table_f1(read_split(data, "train"), test)
    assert results["f1"] > table + 0.25 and results["accuracy"] > always_o, (results["f1"], table, always_o)
    history = pd.read_csv(out / "history.csv")
    val_loss = history[history.split == "val"].loss.tolist()
    assert len(val_loss) == 2 and val_loss[1] < val_loss[0]


def write_document_conll(path: Path, documents: int, seed: int) -> None:
    """A CoNLL file of the learnable pattern, sentences grouped into -DOCSTART- documents."""
    rng = random.Random(seed)
    lines = []
    for _ in range(documents):
        lines += ["-DOCSTART-\tO", ""]
        kind = rng.choice(["PER", "LOC"])
        for _ in range(rng.randint(3, 6)):
            tokens, tags = _sentence(rng, kind)
            lines += [f"{w}\t{t}" for w, t in zip(tokens, tags)] + [""]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def bare_mention_accuracy(gold, predicted) -> tuple:
    """(how many, the fraction tagged right) of the bare mentions ('x W': typed by their document alone) in
    `gold` (rows of (tokens, tags)) by `predicted` (tag lists)."""
    places = [(i, j) for i, (tokens, _) in enumerate(gold) for j in range(1, len(tokens))
              if tokens[j - 1] in ("x", "y", "z") and tokens[j] in ENTITY_WORDS]
    return len(places), sum(predicted[i][j] == gold[i][1][j] for i, j in places) / max(len(places), 1)


def test_documents_context_viterbi_and_labels_file_end_to_end(tmp_path, tiny_checkpoint, capsys):
    """Doc-marked CoNLL (converted with its doc ids) trains with document context and learns what only the
    document tells (bare mentions), far better than a lookup table; a labels file fixes the label order;
    predictions carry entity probabilities and doc ids."""
    from bert_tf.ner import data as ner_data

    data = tmp_path / "data"
    data.mkdir()
    for split, documents, seed in (("train", 40, 0), ("val", 10, 1), ("test", 10, 2)):
        write_document_conll(tmp_path / f"{split}.conll", documents, seed)
        ner_data.write_ner_csv(str(data / f"{split}.csv"), ner_data.read_conll(str(tmp_path / f"{split}.conll")))
    labels_file = tmp_path / "labels.txt"
    labels_file.write_text("O\nB-PER\nB-LOC\nB-ORG\nI-ORG\nB-DATE\nI-DATE\n", encoding="utf-8")
    out = tmp_path / "out"
    process = run_in_process(["run_ner.py", NER_QUICK, f"--bert_model={tiny_checkpoint}", f"--data_path={data}",
                              f"--save_model_path={out}", f"--labels_file={labels_file}", "--max_len=24",
                              "--epochs=10", "--patience=2", "--batch_size=4", "--learning_rate=5e-3", "--seed=3",
                              "--context=document", "--context_vote=majority"], capsys)
    assert process.returncode == 0, process.stderr[-3000:]
    assert "0 training words cut" in process.stdout
    assert re.search(r"context\s+document \(documents: 40 in training\); words decided by the majority window; "
                     r"decoding viterbi", process.stdout)
    config = json.loads((out / "run_config.json").read_text())
    assert config["labels"] == ["O", "B-PER", "B-LOC", "B-ORG", "I-ORG", "B-DATE", "I-DATE"]
    results = json.loads((out / "test_results.json").read_text())
    train, test = read_split(data, "train"), read_split(data, "test")
    table = lookup_table_f1(train, test)
    assert results["f1"] > 0.85 and results["f1"] > table + 0.25, (results["f1"], table)  # the table: about 0.57
    assert results["decoding"]["decode"] == "viterbi" and results["decoding"]["vote"] == "majority"
    assert set(results["comparison"]) == {"central+viterbi", "central+argmax", "majority+viterbi", "majority+argmax"}
    assert "F1 by vote+decoding" in (out / "test_report.txt").read_text()
    predictions = tmp_path / "preds" / "p.csv"
    process = run_in_process(["run_ner.py", NER_QUICK, "--do_predict", f"--save_model_path={out}",
                              f"--predict_file={tmp_path / 'test.conll'}", f"--predict_output={predictions}"], capsys)
    assert process.returncode == 0, process.stderr[-3000:]
    assert "context document, majority window, decoding viterbi" in process.stdout
    predicted = [eval_list(tags) for tags in pd.read_csv(predictions).tags]
    count, model_right = bare_mention_accuracy(test, predicted)
    _, table_right = bare_mention_accuracy(test, lookup_table_tags(train, [tokens for tokens, _ in test]))
    assert count >= 10 and model_right >= 0.8 and model_right > table_right + 0.25, (count, model_right, table_right)
    lines = [json.loads(line) for line in (tmp_path / "preds" / "p.jsonl").read_text().splitlines()]
    entities = [e for line in lines for e in line["entities"]]
    assert lines[0]["doc_id"] == "doc1" and entities
    assert all(0 < e["probability"] <= 1 and e["probability"] <= e["confidence"] + 1e-6 for e in entities)
