"""Corpus prediction with run_classifier.py: many shards in one process, resume after a kill, bad shards, shard
groups; and classifiers fine-tuned by the published TF1 code (output_weights/output_bias) used without training."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, TINY_WORDS, error_lines, run_in_process

from bert_tf.classifier import corpus

from bert_tf.classifier import prediction_files
from bert_tf.errors import InputError

DEMO = ROOT / "data" / "demo" / "consensus"
LABELS = ["che", "dis", "ggp", "org", "out"]
SHARD_ROWS = 40
BATCH = 8  # 5 batches a shard

# Runs run_classifier.py with a SIGKILL in the middle of writing predictions: at the KILL_AT-th batch written.
KILLER = """
import os, runpy, signal, sys
sys.path.insert(0, {root!r})
from bert_tf.classifier import prediction_writer as classifier
calls = [0]
original = classifier.PredictionWriter.add
def add(self, probs, gold=None):
    calls[0] += 1
    if calls[0] == int(os.environ["KILL_AT"]):
        os.kill(os.getpid(), signal.SIGKILL)
    original(self, probs, gold)
classifier.PredictionWriter.add = add
sys.argv = [{script!r}] + sys.argv[1:]
runpy.run_path({script!r}, run_name="__main__")
"""


def demo_rows(name: str) -> list:
    """The lines of a demo split."""
    return (DEMO / name).read_text(encoding="utf-8").splitlines(keepends=True)


def write_shards(folder: Path, rows: list, count: int = 3) -> list:
    """`count` shards named as the published tagger names them (ggp-contexts-w100-NNN.tsv)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"ggp-contexts-w100-{i:03d}.tsv"
        path.write_text("".join(rows[i * SHARD_ROWS:(i + 1) * SHARD_ROWS]), encoding="utf-8", newline="")
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_checkpoint):
    """A tiny classifier trained 1 epoch on part of the demo data."""
    base = tmp_path_factory.mktemp("corpus")
    data = base / "data"
    data.mkdir()
    (data / "train.tsv").write_text("".join(demo_rows("train.tsv")[:96]), encoding="utf-8", newline="")
    (data / "dev.tsv").write_text("".join(demo_rows("dev.tsv")[:32]), encoding="utf-8", newline="")
    out = base / "run"
    process = run_in_process(["run_classifier.py", f"--bert_model={tiny_checkpoint}", f"--data_dir={data}",
                             f"--output_dir={out}", "--do_train", f"--labels_file={DEMO / 'labels.txt'}",
                             "--max_seq_length=32", "--train_batch_size=16", "--num_train_epochs=1",
                             "--verbose=false"])
    assert process.returncode == 0, process.stderr[-3000:]
    assert (out / "model").is_dir() and not (out / "checkpoints").exists()  # deleted without --keep_checkpoints
    shards = write_shards(base / "contexts", demo_rows("test.tsv"))
    return out, shards


def predict_args(out: Path, predict_file, predict_dir: Path, *extra) -> list:
    return ["run_classifier.py", "--do_predict", f"--output_dir={out}", f"--predict_file={predict_file}",
            f"--predict_output_dir={predict_dir}", "--shard_id=last_field", f"--predict_batch_size={BATCH}",
            "--verbose=false", *extra]


def outputs_of(folder: Path) -> dict:
    """Every visible file of a folder (name -> text) but prediction_info.json and the shard records."""
    return {p.name: p.read_text(encoding="utf-8") for p in sorted(folder.iterdir())
            if not p.name.startswith(".") and not p.name.endswith(".json")}


def test_killed_corpus_run_resumes_and_matches_a_clean_run(trained, tmp_path, capsys):
    out, shards = trained
    folder = shards[0].parent
    killed = tmp_path / "killed"
    wrapper = tmp_path / "killer.py"
    wrapper.write_text(KILLER.format(root=str(ROOT), script=str(ROOT / "run_classifier.py")))
    env = dict(os.environ, KILL_AT=str(SHARD_ROWS // BATCH + 2), CUDA_VISIBLE_DEVICES="")
    process = subprocess.run([sys.executable, str(wrapper), *predict_args(out, folder, killed)[1:]], cwd=ROOT,
                             env=env, capture_output=True, text=True, timeout=300)
    assert process.returncode == -9, process.stderr[-3000:]
    assert sorted(outputs_of(killed)) == ["output_with_probabilities_000.tsv", "test_results_000.tsv"]
    first = (killed / "output_with_probabilities_000.tsv").stat().st_mtime_ns

    rerun = run_in_process(predict_args(out, folder, killed), capsys)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "predicting 2 of 3 shard(s)" in rerun.stdout and "(1 done before)" in rerun.stdout
    assert (killed / "output_with_probabilities_000.tsv").stat().st_mtime_ns == first  # skipped, not redone
    assert not [p.name for p in killed.iterdir() if p.name.endswith(".tmp")]

    clean = tmp_path / "clean"
    listing = tmp_path / "shards.txt"
    listing.write_text("# the corpus\n" + "\n".join(os.path.relpath(p, tmp_path) for p in shards) + "\n")
    fresh = run_in_process(predict_args(out, f"@{listing}", clean), capsys)
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    assert outputs_of(killed) == outputs_of(clean)
    assert len(outputs_of(clean)) == 6
    for i, shard in enumerate(shards):
        full = (clean / f"output_with_probabilities_{i:03d}.tsv").read_text().splitlines()
        inputs = shard.read_text().splitlines()
        assert full[0] == prediction_files.header_line(LABELS).rstrip("\n") and len(full) == len(inputs) + 1
        assert [line.split("\t")[:6] for line in full[1:]] == [line.split("\t") for line in inputs]
    info = json.loads((clean / "prediction_info.json").read_text())
    assert info["labels"] == LABELS and info["max_seq_length"] == 32 and info["model"].endswith("model")
    check_blocklists_from(killed, tmp_path)


GLOBAL_THRESHOLDS = {"che": 0.5, "dis": 0.85, "ggp": 0.5, "org": 0.5}
NEVER_BLOCKED = {("insulin", "ggp"), ("INSULIN", "ggp")}


def expected_global_names(predictions: Path) -> list:
    """auto_global.tsv computed here from the prediction files, apart from bert_tf.classifier.blocklists: per type, per
    document (a run of consecutive rows of one file) and name, the tagger-type rows' probabilities multiplied label by label and normalised; a name is
    blocked everywhere when it is in at least 2 documents and its mean probability of not being the type reaches
    the type's threshold."""
    rows, group = [], 0
    for path in sorted(predictions.glob("output_with_probabilities_*")):
        lines = path.read_text(encoding="utf-8").splitlines()
        header, previous = lines[0].split("\t"), None
        for line in lines[1:]:
            row = dict(zip(header, line.split("\t")))
            if row["doc_id"] != previous:  # a document is a run of consecutive rows of one file, as published
                group, previous = group + 1, row["doc_id"]
            rows.append((group, row))
    blocked = set()
    for type_, threshold in GLOBAL_THRESHOLDS.items():
        per_doc = {}
        for doc, row in rows:
            if row["label"] == type_:
                logs = np.log10([float(row[label]) for label in LABELS])
                key = (doc, row["mention"])
                per_doc[key] = per_doc.get(key, 0.0) + logs
        errors = {}
        for (doc, name), logs in per_doc.items():
            p = 10 ** (logs - logs.max())
            errors.setdefault(name, []).append(1.0 - p[LABELS.index(type_)] / p.sum())
        blocked |= {name for name, e in errors.items()
                    if len(e) >= 2 and np.mean(e) >= threshold and (name, type_) not in NEVER_BLOCKED}
    return sorted(f"{name}\tt" for name in blocked)


def check_blocklists_from(predictions: Path, tmp_path: Path) -> None:
    """The last step of the published chain on these predictions: every type's folder, then the blocklists."""
    run_dir = tmp_path / "run_dir"
    for type_ in GLOBAL_THRESHOLDS:
        shutil.copytree(predictions, run_dir / f"{type_}-predictions")
    lists = tmp_path / "lists"
    done = subprocess.run([sys.executable, "-m", "bert_tf.classifier.blocklists", "pipeline", "--run_dir", str(run_dir),
                           "--output_dir", str(lists)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    temperature = json.loads((predictions / "prediction_info.json").read_text())["temperature"]
    assert "temperature" in done.stderr and (temperature in (None, 1.0) or f"{temperature:.4g}" in done.stderr)
    expected = expected_global_names(predictions)
    assert expected, "the demo shards should give at least one name in two documents"
    assert (lists / "auto_global.tsv").read_text(encoding="utf-8").splitlines() == expected
    local = [line.split("\t") for line in (lists / "auto_local.tsv").read_text(encoding="utf-8").splitlines()]
    pairs = {(r.split("\t")[4], r.split("\t")[0]) for p in predictions.glob("output_with_probabilities_*")
             for r in p.read_text(encoding="utf-8").splitlines()[1:]}
    assert all(len(r) == 3 and r[2] in ("t", "f") and (r[0], r[1]) in pairs for r in local)


def test_bad_shard_stops_with_file_and_line_and_leaves_the_others(trained, tmp_path, capsys):
    out, shards = trained
    rows = demo_rows("test.tsv")
    folder = tmp_path / "contexts"
    paths = write_shards(folder, rows)
    broken = rows[SHARD_ROWS:2 * SHARD_ROWS]
    broken[2] = "\t".join(broken[2].split("\t")[:3]) + "\n"  # fewer than the 4 fields the published reader needs
    paths[1].write_text("".join(broken), encoding="utf-8")
    predictions = tmp_path / "predictions"
    process = run_in_process(predict_args(out, str(folder / "ggp-contexts-*.tsv"), predictions), capsys)
    assert process.returncode == 2
    errors = error_lines(process)
    assert len(errors) == 1 and f"{paths[1]}:3" in errors[0] and "found 3" in errors[0], errors
    assert sorted(outputs_of(predictions)) == ["output_with_probabilities_000.tsv", "test_results_000.tsv"]
    assert not [p.name for p in predictions.iterdir() if p.name.endswith(".tmp")]


def other_model(model: Path, target: Path) -> Path:
    """A copy of a saved model with one classifier bias changed: another model, same everything else."""
    from safetensors.numpy import load_file, save_file

    shutil.copytree(model, target)
    tensors = load_file(str(target / "model.safetensors"))
    assert tensors["classifier.bias"].shape == (len(LABELS),)
    tensors["classifier.bias"] = tensors["classifier.bias"] + 0.5
    save_file(tensors, str(target / "model.safetensors"), metadata={"format": "pt"})
    return target


def test_a_rerun_with_another_model_stops_naming_the_shard(trained, tmp_path, capsys):
    out, shards = trained
    folder = shards[0].parent
    predictions = tmp_path / "ggp-predictions"
    first = run_in_process(predict_args(out, folder, predictions, "--use_fp16"), capsys)  # a float32 model
    assert first.returncode == 0, first.stderr[-3000:]
    assert "--use_fp16 as published: the model stays float32" in first.stderr
    record = json.loads((predictions / "shard_info_001.json").read_text())
    assert record["labels"] == LABELS and record["precision"] == "float32" and len(record["model_digest"]) == 64
    raw = np.loadtxt(predictions / "test_results_000.tsv")
    temperature = json.loads((out / "model" / "bert_tf_model.json").read_text())["fitted_temperature"]
    model_b = other_model(out / "model", tmp_path / "model_b")
    second = run_in_process(predict_args(tmp_path / "b_jobs", folder, predictions, f"--bert_model={model_b}"),
                            capsys)
    assert second.returncode == 2
    errors = error_lines(second)
    assert errors == [f"error: {predictions / 'output_with_probabilities_000.tsv'}: shard 000 was predicted by "
                      f"another setting (model_digest {record['model_digest'][:12]} vs {errors[0].split(' vs ')[1][:12]}"
                      ", recorded vs this run); use --overwrite_output_dir to predict every shard again with this "
                      "one, or another --predict_output_dir"], errors
    assert json.loads((predictions / "shard_info_000.json").read_text()) == {
        **record, "input": str(shards[0])}  # untouched
    # --overwrite_output_dir redoes every shard; --apply_temperature gives softmax(log p / T) of the raw ones
    forced = run_in_process(predict_args(out, folder, predictions, "--apply_temperature",
                                         "--overwrite_output_dir"), capsys)
    assert forced.returncode == 0, forced.stderr[-3000:]
    assert "predicting 3 of 3 shard(s)" in forced.stdout
    expected = np.exp(np.log(raw) / temperature)
    np.testing.assert_allclose(np.loadtxt(predictions / "test_results_000.tsv"),
                               expected / expected.sum(axis=1, keepdims=True), atol=2e-5)
    records = [json.loads(p.read_text()) for p in predictions.glob("shard_info_*.json")]
    assert {r["temperature"] for r in records} == {temperature} and len({r["model_digest"] for r in records}) == 1
    # one shard of model A among model B's: the blocklists refuse the folder, naming two shards
    (predictions / "shard_info_002.json").write_text(json.dumps(record))
    lists = subprocess.run([sys.executable, "-m", "bert_tf.classifier.blocklists", "pipeline", "--run_dir", str(tmp_path),
                            "--types", "ggp", "--output_dir", str(tmp_path / "lists")], cwd=ROOT, capture_output=True,
                           text=True, timeout=300)
    assert lists.returncode == 2 and not (tmp_path / "lists").exists()
    assert error_lines(lists) == [f"error: {predictions}: the shards of this folder were predicted by different "
                                  f"settings: shard_info_000.json and shard_info_002.json differ in temperature "
                                  f"{json.dumps(temperature)} vs 1.0; predict them again with one model "
                                  "(--overwrite_output_dir)"], lists.stderr


def test_shard_records(tmp_path):
    """A done shard is skipped only when its record is this run's; no record, or another, stops with the shard."""
    paths = write_shards(tmp_path / "c", ["1\tT\tggp\ta \tb\t c\n"] * 4, count=2)
    shards = corpus.plan_shards([str(p) for p in paths], True, str(tmp_path / "p"), "last_field", False)
    current = corpus.provenance("a" * 64, LABELS, 0, 32, "[unused1]", "pooler", 1.0, "float32")
    corpus.check_done_shards(shards, current)  # nothing done yet
    for path in shards[0].outputs.values():
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text("x\n")
    with pytest.raises(InputError, match=r"output_with_probabilities_000.tsv: shard 000 has outputs but no "
                                         r"shard_info_000.json"):
        corpus.check_done_shards(shards, current)
    corpus.write_record(shards[0], current, "/models/a")
    corpus.check_done_shards(shards, current)
    for key, value in (("temperature", 1.7), ("precision", "mixed_bfloat16"), ("max_seq_length", 64)):
        with pytest.raises(InputError, match=f"shard 000 was predicted by another setting \\({key} "):
            corpus.check_done_shards(shards, {**current, key: value})
    corpus.check_folder_consistent(str(tmp_path / "p"))
    corpus.write_record(shards[1], {**current, "temperature": 2.0}, "/models/a")
    with pytest.raises(InputError, match="shard_info_000.json and shard_info_001.json differ in temperature 1.0 vs 2.0"):
        corpus.check_folder_consistent(str(tmp_path / "p"))


def test_listing_shard_ids_and_groups(tmp_path):
    folder = tmp_path / "c"
    paths = write_shards(folder, ["1\tT\tggp\ta \tb\t c\n"] * 10, count=5)
    (folder / "notes.txt").write_text("not a shard")
    assert corpus.list_inputs(str(folder)) == ([str(p) for p in paths], True)
    assert corpus.list_inputs(str(folder / "*-00[13].tsv")) == ([str(paths[1]), str(paths[3])], True)
    assert corpus.list_inputs(str(paths[2])) == ([str(paths[2])], False)
    assert corpus.shard_id(str(paths[4]), "last_field") == "004"
    assert corpus.shard_id(str(paths[4]), "stem") == "ggp-contexts-w100-004"
    shards = corpus.plan_shards([str(p) for p in paths], True, str(tmp_path), "last_field", True)
    assert sorted(os.path.relpath(p, tmp_path) for p in shards[0].outputs.values()) == [
        "output_with_probabilities_000.tsv", "published/output_with_probabilities_000.tsv",
        "published/test_output_labels_000.txt", "test_results_000.tsv"]
    groups = [corpus.group_shards(shards, g, 2) for g in range(2)]
    assert [s.shard_id for s in groups[0]] == ["000", "002", "004"] and [s.shard_id for s in groups[1]] == ["001", "003"]
    listing = tmp_path / "list.txt"
    listing.write_text(f"{paths[0]}\n\nmissing.tsv\n")
    with pytest.raises(InputError, match=r"list.txt:3: listed input 'missing.tsv' is not a file"):
        corpus.list_inputs(f"@{listing}")
    with pytest.raises(InputError, match="no file matches"):
        corpus.list_inputs(str(tmp_path / "*.nothing"))
    with pytest.raises(InputError, match="same shard id"):
        corpus.plan_shards([str(paths[0]), str(tmp_path / "other-000.tsv")], True, str(tmp_path), "last_field", False)
    with pytest.raises(InputError, match="must be in 0..1"):
        corpus.resolve_group(2, 2)


def test_corpus_command_line_takes_run_classifiers_flags(tmp_path, capsys):
    folder = tmp_path / "c"
    write_shards(folder, ["1\tT\tggp\ta \tb\t c\n"] * 2, count=3)
    assert corpus.main(["count", f"--predict_file={folder}"]) == 0
    assert capsys.readouterr().out == "3\n"
    assert corpus.main(["pending", f"--predict_file={folder}", f"--predict_output_dir={tmp_path / 'out'}",
                        "--shard_id=last_field", "--num_shard_groups=2"]) == 0
    assert capsys.readouterr().out == "0 1\n"
    for bad in (["pending", f"--predict_file={folder}", "--shard_id=nope"], ["pending"], ["again", "--predict_file=x"]):
        assert corpus.main(bad) == 2
        assert capsys.readouterr().err.startswith("error: ")


def published_checkpoint(base: Path, rows: int = 6) -> tuple:
    """A tiny BERT fine-tuned 'by the published TF1 code': bert_config.json, vocab.txt, model.ckpt-123 with the
    BERT body, pooler, and output_weights [rows, hidden] / output_bias [rows]; also the same body as a Hugging
    Face directory (for the independent computation) and the head."""
    from safetensors.numpy import load_file

    from checkpoint_factory import make_random_hf_checkpoint, tf1_tensors, write_tf1_checkpoint

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[unused1]"] + TINY_WORDS + [
        "##" + c for c in "abcdefghijklmnopqrstuvwxyz"] + list("abcdefghijklmnopqrstuvwxyz")
    hf = make_random_hf_checkpoint(str(base / "hf"), vocab, hidden=32, layers=2, heads=2, intermediate=64,
                                   max_positions=128, seed=7, hidden_act="relu")
    rng = np.random.default_rng(3)
    head = (rng.standard_normal((rows, 32)).astype("float32"), rng.standard_normal(rows).astype("float32"))
    tensors = tf1_tensors(load_file(os.path.join(hf, "model.safetensors")))
    tensors.update(output_weights=head[0], output_bias=head[1], global_step=np.int64(123))
    tf1 = base / "tf1"
    write_tf1_checkpoint(str(tf1 / "model.ckpt-123"), tensors)
    (tf1 / "bert_config.json").write_text((Path(hf) / "config.json").read_text())
    (tf1 / "vocab.txt").write_text((Path(hf) / "vocab.txt").read_text())
    labels_dir = base / "labels"
    labels_dir.mkdir()
    (labels_dir / "labels.txt").write_text("out\nche\ndis\nggp\norg\n")  # the published code sorts them
    return hf, tf1, labels_dir, head


def independent_probabilities(hf: str, rows: list, head: tuple) -> np.ndarray:
    """softmax(pooled @ W.T + b) over every row of the head, the body computed by the numpy reference
    (tests/reference_bert.py) from the Hugging Face copy's files, not by bert_tf's model code."""
    from bert_tf.classifier.features import featurize_mentions
    from bert_tf.tokenization import WordPieceTokenizer
    from reference_bert import ReferenceBert

    tokenizer = WordPieceTokenizer.from_vocab(os.path.join(hf, "vocab.txt"), True)
    fields = [line.rstrip("\n").split("\t") for line in rows]
    features = featurize_mentions([f[3] for f in fields], [f[4] for f in fields], [f[5] for f in fields], tokenizer, 32)
    reference = ReferenceBert.load(hf)
    pooled = reference.pooled(reference.encode(features.token_ids, features.padding_mask(tokenizer.pad_id),
                                               features.segment_ids()))
    logits = pooled @ head[0].T.astype(np.float64) + head[1]
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    return p / p.sum(axis=1, keepdims=True)


def test_published_tf1_classifier_predicts_as_the_published_code(tmp_path, capsys):
    hf, tf1, labels_dir, head = published_checkpoint(tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    rows = demo_rows("test.tsv")[:24]
    (data / "dev.tsv").write_text("".join(demo_rows("dev.tsv")[:24]))
    (data / "test.tsv").write_text("".join(rows))
    out = tmp_path / "out"
    process = run_in_process(["run_classifier.py", "--do_eval", "--do_predict",
                             f"--bert_config_file={tf1 / 'bert_config.json'}",
                             f"--vocab_file={tf1 / 'vocab.txt'}", f"--init_checkpoint={tf1 / 'model.ckpt-123'}",
                             f"--labels_dir={labels_dir}", f"--data_dir={data}", f"--output_dir={out}",
                             "--max_seq_length=32", "--do_lower_case", "--seed_compatible_outputs",
                             "--verbose=false"], capsys)
    assert process.returncode == 0, process.stderr[-3000:]
    expected = independent_probabilities(hf, rows, head)
    published = np.array([[float(v) for v in line.split("\t")] for line in (out / "test_results.tsv").read_text().splitlines()])
    assert published.shape == (24, 6)  # every logit's probability, no header, as the published code wrote
    np.testing.assert_allclose(published, expected, rtol=1e-4, atol=1e-6)
    ours = np.loadtxt(out / "output_with_probabilities.tsv", delimiter="\t", skiprows=1, usecols=range(7, 12),
                      comments=None, dtype=np.float64)
    np.testing.assert_allclose(ours, expected[:, :5], rtol=1e-4, atol=1e-6)
    predicted = [LABELS[i] for i in expected[:, :5].argmax(axis=1)]
    assert (out / "test_output_labels.txt").read_text().splitlines() == predicted
    published_rows = (out / "output_with_probabilities_dict.tsv").read_text().splitlines()
    assert [r.split("\t")[6] for r in published_rows] == predicted
    assert prediction_files.parse_published_dict(published_rows[0].split("\t")[7]).keys() == set(LABELS)
    metrics = json.loads((out / "eval_results.json").read_text())
    assert metrics["num_examples"] == 24 and set(metrics["per_class"]) == set(LABELS)


def test_label_file_disagreeing_with_the_checkpoint_rows(tmp_path, capsys):
    hf, tf1, labels_dir, head = published_checkpoint(tmp_path, rows=8)
    out = tmp_path / "out"
    process = run_in_process(["run_classifier.py", "--do_predict",
                             f"--bert_config_file={tf1 / 'bert_config.json'}",
                             f"--vocab_file={tf1 / 'vocab.txt'}", f"--init_checkpoint={tf1 / 'model.ckpt-123'}",
                             f"--labels_dir={labels_dir}", f"--predict_file={DEMO / 'test.tsv'}",
                             f"--output_dir={out}"], capsys)
    assert process.returncode == 2
    errors = error_lines(process)
    assert len(errors) == 1 and str(labels_dir / "labels.txt") in errors[0] and "8 rows" in errors[0], errors
    assert not out.exists()
