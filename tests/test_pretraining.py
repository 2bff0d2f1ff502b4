"""Continued masked-LM pretraining: inputs, whole-word masking and packing, the MLM and next-sentence heads read from
HF, tf_model.h5 and TF1 checkpoints and exported as BertForMaskedLM / BertForPreTraining (against an independent
numpy BERT), exact gradient accumulation with both losses, NVIDIA TFRecords with next-sentence prediction on and off,
bad inputs, and end-to-end runs that learn and resume bitwise (the masked-LM end-to-end run, resumed after a real
SIGKILL, is in test_kill_resume.py)."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, TINY_WORDS, check_png, error_lines, run_script

from bert_tf.batch_format import IGNORE_LABEL, LABELS, TOKEN_IDS
from bert_tf.errors import InputError
from bert_tf.pretraining import inputs, masking

FAULT_INJECTION = str(ROOT / "tests" / "fault_injection.py")


# --- masking and packing (numpy only) ----------------------------------------------------------------------


def _synthetic_config(max_predictions: int = 20, whole_word: bool = True) -> masking.MaskingConfig:
    return masking.MaskingConfig(0.15, max_predictions, whole_word, mask_id=4, vocab_size=1000, special_ids=(2, 3, 0))


def _synthetic_block(rng: np.random.Generator, length: int = 128):
    """[CLS] random pieces [SEP]; ids 500-999 continue a word."""
    ids = np.concatenate([[2], rng.integers(10, 1000, length - 2), [3]]).astype(np.int32)
    is_continuation = np.zeros(1000, bool)
    is_continuation[500:] = True
    return ids, is_continuation


def test_masking_statistics_and_whole_words():
    rng = np.random.default_rng(0)
    config = _synthetic_config()
    counts = {"mask": 0, "random": 0, "kept": 0}
    for b in range(600):
        ids, table = _synthetic_block(rng)
        masked, positions, labels = masking.mask_block(ids, table, config, masking.block_rng(1, 0, b))
        chosen = positions[labels != IGNORE_LABEL]
        assert len(chosen) <= 19 and len(chosen) >= 15  # round(128 * 0.15) = 19; whole words may leave a few out
        assert 0 not in chosen and 127 not in chosen  # never [CLS] / [SEP]
        assert np.array_equal(labels[: len(chosen)], ids[chosen])
        groups = masking.word_groups(ids, table, True, config.special_ids)
        chosen_set = set(chosen.tolist())
        for group in groups:  # a word is masked whole or not at all
            assert set(group) <= chosen_set or not set(group) & chosen_set
        assert np.array_equal(np.flatnonzero(masked != ids), np.array(
            [p for p in chosen if masked[p] != ids[p]], dtype=np.int64))
        counts["mask"] += int(np.sum(masked[chosen] == 4))
        counts["kept"] += int(np.sum(masked[chosen] == ids[chosen]))
        counts["random"] += int(np.sum((masked[chosen] != 4) & (masked[chosen] != ids[chosen])))
    total = sum(counts.values())
    assert abs(counts["mask"] / total - 0.8) < 0.02
    assert abs(counts["kept"] / total - 0.1) < 0.015
    assert abs(counts["random"] / total - 0.1) < 0.015


def test_per_piece_masking_ignores_words():
    rng = np.random.default_rng(1)
    ids, table = _synthetic_block(rng)
    groups = masking.word_groups(ids, table, False, (2, 3, 0))
    assert len(groups) == 126 and all(len(g) == 1 for g in groups)
    assert len(masking.word_groups(ids, table, True, (2, 3, 0))) < 126


@pytest.fixture(scope="module")
def tokenizer(tiny_checkpoint):
    from bert_tf.tokenization import WordPieceTokenizer

    return WordPieceTokenizer.from_model_dir(tiny_checkpoint)


def _stream(tokenizer, folder, documents, max_seq_length=16, batch_size=4, seed=3, eval_fraction=0.0,
            shuffle_buffer=8):
    """The training side of the documents written as a paragraphs text file in `folder`."""
    from bert_tf.pretraining import stream

    folder.mkdir(exist_ok=True)
    path = folder / f"docs{len(list(folder.iterdir()))}.txt"
    path.write_text("\n\n".join("\n".join(d) for d in documents) + "\n", encoding="utf-8")
    table = masking.continuation_table(tokenizer)
    config = masking.MaskingConfig(0.15, 3, True, tokenizer.token_to_id("[MASK]"), tokenizer.vocab_size,
                                   (tokenizer.cls_id, tokenizer.sep_id, tokenizer.pad_id))
    corpus = stream.TextCorpus([str(path)], tokenizer, max_seq_length, table, eval_fraction, seed)
    return stream.MaskedLMStream(corpus, False, config, seed, batch_size, tokenizer.pad_id, shuffle_buffer)


def _masked(data, batch, epoch):
    return masking.masked_batch([(i, ids) for i, _, ids in batch], data.corpus.is_continuation, data.masking,
                                data.seed, epoch, data.pad_id, max_length=data.corpus.max_seq_length)


def test_packing_stays_inside_documents_and_cuts_at_word_starts(tokenizer, tmp_path):
    people = ["alice bob carol dave alice bob", "dave carol bob alice"]
    places = ["paris rome oslo lima", "rome paris abcdefghijklmnop oslo"]  # a 16-piece word: longer than a block
    data = _stream(tokenizer, tmp_path, [people, places, ["x y z"]])
    blocks = list(data.corpus.blocks(0, False))
    ids_of = lambda words: {i for w in words.split() for i in tokenizer.encode_words([w])[0]}
    people_ids, place_ids = ids_of(" ".join(people)), ids_of(" ".join(places))
    kinds = []
    for block in blocks:
        assert block[0] == tokenizer.cls_id and block[-1] == tokenizer.sep_id and len(block) <= 16
        inner = set(block[1:-1].tolist())
        kinds.append("people" if inner <= people_ids else "places" if inner <= place_ids else "xyz")
        assert inner <= people_ids or inner <= place_ids or inner <= ids_of("x y z")
    assert kinds == sorted(kinds, key=["people", "places", "xyz"].index)  # documents in order, never mixed
    assert data.corpus.scan.words_cut == 1
    starts_inside_word = [b for b in blocks if data.corpus.is_continuation[b[1]]]
    assert len(starts_inside_word) == 1  # only the block that continues the over-long word
    assert sum(len(b) - 2 for b in blocks) == sum(
        len(tokenizer.encode_texts([s])[0]) for d in [people, places, ["x y z"]] for s in d)
    assert data.corpus.scan.lengths[0][0].tolist() == [len(b) for b in blocks]


def test_same_seed_same_masks_new_masks_each_epoch(tokenizer, tmp_path):
    documents = [[" ".join(TINY_WORDS[(i * 7 + j) % 22] for j in range(30))] for i in range(12)]
    first, second = _stream(tokenizer, tmp_path, documents), _stream(tokenizer, tmp_path, documents)
    batch = list(first.epoch_batches(0))[1]
    a, b = _masked(first, batch, 0), _masked(second, list(second.epoch_batches(0))[1], 0)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    order = lambda data, epoch: [[i for i, _, _ in batch] for batch in data.epoch_batches(epoch)]
    assert order(first, 0) != order(first, 1)
    assert not np.array_equal(a[TOKEN_IDS], _masked(first, batch, 1)[TOKEN_IDS])  # same blocks, next epoch
    other_seed = _stream(tokenizer, tmp_path, documents, seed=4)
    assert not np.array_equal(a[TOKEN_IDS], _masked(other_seed, batch, 0)[TOKEN_IDS])


def test_stream_resumes_skipping_batches_and_plans_from_lengths(tokenizer, tmp_path):
    documents = [[" ".join(TINY_WORDS[(i * 5 + j) % 22] for j in range(4 + i % 9))] for i in range(40)]
    data = _stream(tokenizer, tmp_path, documents, batch_size=2)
    full = [b for b in data.epoch_batches(1)]
    assert len(full) == data.steps_per_epoch == data.num_blocks // 2
    assert [[i for i, _, _ in b] for b in data.epoch_batches(1, with_ids=False)] == [[i for i, _, _ in b] for b in full]
    assert sorted(i for b in full for i, _, _ in b) == sorted(set(i for b in full for i, _, _ in b))  # no repeats
    whole = list(data.epoch_dataset(1, 0, data.steps_per_epoch).as_numpy_iterator())
    resumed = list(data.epoch_dataset(1, 3, data.steps_per_epoch).as_numpy_iterator())
    assert len(resumed) == len(whole) - 3
    assert all(np.array_equal(x[k], y[k]) for x, y in zip(resumed, whole[3:]) for k in x)
    lengths = [len(ids) for b in full for _, _, ids in b]
    padded = sum(max(8 * -(-max(len(ids) for _, _, ids in b) // 8), 0) * len(b) for b in full)
    assert data.real_token_share(1) == pytest.approx(sum(lengths) / padded)


def test_held_out_documents_by_seeded_hash(tokenizer, tmp_path):
    from bert_tf.pretraining import stream

    documents = [[f"{TINY_WORDS[i % 22]} {TINY_WORDS[(i * 3) % 22]} {i}"] for i in range(60)]
    data = _stream(tokenizer, tmp_path, documents, eval_fraction=0.2)
    corpus = data.corpus
    held = [d for d in documents if corpus.is_held_out(d)]
    assert corpus.scan.documents == [60 - len(held), len(held)] and 4 <= len(held) <= 20
    assert held == [d for d in documents if stream.document_hash(d, 3) < 0.2 * 2 ** 64]
    assert list(corpus.documents(0, True)) == held
    evaluation = stream.MaskedLMStream(corpus, True, data.masking, 3, 5, tokenizer.pad_id)
    dataset, batches = evaluation.eval_dataset(5)
    rows = list(dataset.as_numpy_iterator())
    assert len(rows) == batches and sum(len(r[TOKEN_IDS]) for r in rows) == evaluation.num_blocks
    one = _stream(tokenizer, tmp_path, documents[:2], eval_fraction=0.01).corpus  # never none held out of two
    assert one.scan.documents == [1, 1]


def test_stream_memory_does_not_grow_with_the_corpus(tokenizer, tmp_path):
    """Python's allocations while an epoch streams: a corpus ten times larger peaks at about the same."""
    import tracemalloc

    def peak(lines):
        line = " ".join(TINY_WORDS[:10])
        data = _stream(tokenizer, tmp_path / str(lines), [[line] for _ in range(lines)], batch_size=4)
        tracemalloc.start()
        assert sum(1 for _ in data.epoch_batches(0)) == data.steps_per_epoch
        size = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return size

    small, large = peak(200), peak(2000)
    assert large < small + 100_000, (small, large)
    print(small, large)


# --- input files ---------------------------------------------------------------------------------------------


def test_input_formats(tmp_path, monkeypatch):
    """Raw text is Google's format (a sentence a line, blank or whitespace-only lines between documents; without
    blank lines the file is one document, read in parts of DOCUMENT_PART_LINES lines)."""
    (tmp_path / "lines.txt").write_text("one sentence.\nanother one.\n", encoding="utf-8")
    (tmp_path / "paras.txt").write_text("\n s1 of d1.\ns2 of d1.\n\n \t\n\ns1 of d2.\n", encoding="utf-8")
    (tmp_path / "ner.csv").write_text('tokens,tags,doc_id\n"[\'a\', \'b\']","[\'O\', \'O\']",d1\n'
                                      '"[\'c\']","[\'O\']",d1\n"[\'d\']","[\'O\']",d2\n', encoding="utf-8")
    (tmp_path / "ner.conll").write_text("-DOCSTART-\tO\n\nw1\tO\nw2\tB-X\n\nw3\tO\n-DOCSTART-\tO\n\nw4\tO\n",
                                        encoding="utf-8")
    (tmp_path / "bc5cdr.tsv").write_text("A\t11\t0\tB\nb\t-\t2\tO\n\nC\t11\t4\tO\n\nD\t12\t0\tO\n", encoding="utf-8")
    (tmp_path / "consensus.tsv").write_text("d\ta\tche\tDOCSTART left \tmention\t right DOCEND\n", encoding="utf-8")
    read = lambda name: inputs.read_documents(str(tmp_path / name))
    assert read("lines.txt") == [["one sentence.", "another one."]]
    assert read("paras.txt") == [["s1 of d1.", "s2 of d1."], ["s1 of d2."]]
    (tmp_path / "long.txt").write_text("".join(f"s{i}.\n" for i in range(7)) + "\nt0.\n", encoding="utf-8")
    monkeypatch.setattr(inputs, "DOCUMENT_PART_LINES", 3)
    assert read("long.txt") == [["s0.", "s1.", "s2."], ["s3.", "s4.", "s5."], ["s6."], ["t0."]]
    assert read("ner.csv") == [["a b", "c"], ["d"]]
    assert read("ner.conll") == [["w1 w2", "w3"], ["w4"]]
    assert read("bc5cdr.tsv") == [["A b", "C"], ["D"]]
    assert read("consensus.tsv") == [["left mention right"]]
    (tmp_path / "list").write_text(f"{tmp_path / 'lines.txt'}\n{tmp_path / 'paras.txt'}\n", encoding="utf-8")
    assert inputs.expand_input_files(f"@{tmp_path / 'list'}") == [str(tmp_path / "lines.txt"),
                                                                    str(tmp_path / "paras.txt")]
    assert inputs.expand_input_files(str(tmp_path / "*.txt")) == sorted(str(p) for p in tmp_path.glob("*.txt"))


@pytest.mark.parametrize("content, problem, line", [
    (b"", "empty file", None), (b"  \n\n", "empty file", None),
    (b"text\nmore\x00binary", "binary file", 2), (b"ok\n\xff\xfe bad", "not valid UTF-8", 2)])
def test_bad_text_files(tmp_path, content, problem, line):
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    with pytest.raises(InputError) as e:
        inputs.read_documents(str(path))
    assert problem in e.value.problem and e.value.path == str(path) and e.value.line == line
    with pytest.raises(InputError, match="file not found"):
        inputs.expand_input_files(str(tmp_path / "missing.txt"))
    with pytest.raises(InputError, match="no file matches"):
        inputs.expand_input_files(str(tmp_path / "*.none"))


# --- the masked-LM head, export, accumulation (tiny models) --------------------------------------------------


def _gelu(x, exact):
    from scipy.special import erf

    if exact:
        return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def _layer_norm(x, weight, bias, eps=1e-12):
    mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


def _float64_weights(state):
    return {k[len("bert."):] if k.startswith("bert.") else k: v.astype(np.float64) for k, v in state.items()}


def numpy_encoder(state, config, ids, mask):
    """An independent float64 BERT encoder on Hugging Face weights ([out, in] dense): the sequence output."""
    w = _float64_weights(state)
    exact = config["hidden_act"] == "gelu"
    dense = lambda x, name: x @ w[name + ".weight"].T + w[name + ".bias"]
    x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:ids.shape[1]] \
        + w["embeddings.token_type_embeddings.weight"][0]
    x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
    heads, hidden = config["num_attention_heads"], config["hidden_size"]
    size = hidden // heads
    split = lambda t: t.reshape(t.shape[0], t.shape[1], heads, size).transpose(0, 2, 1, 3)
    for i in range(config["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        q, k, v = (split(dense(x, p + f"attention.self.{n}")) for n in ("query", "key", "value"))
        scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(size) + (1.0 - mask[:, None, None, :]) * -1e9
        probs = np.exp(scores - scores.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        context = (probs @ v).transpose(0, 2, 1, 3).reshape(x.shape)
        x = _layer_norm(x + dense(context, p + "attention.output.dense"), w[p + "attention.output.LayerNorm.weight"],
                        w[p + "attention.output.LayerNorm.bias"])
        inner = _gelu(dense(x, p + "intermediate.dense"), exact)
        x = _layer_norm(x + dense(inner, p + "output.dense"), w[p + "output.LayerNorm.weight"],
                        w[p + "output.LayerNorm.bias"])
    return x


def numpy_masked_lm(state, config, ids, mask, positions):
    """The masked-LM logits of BertForMaskedLM weights: the encoder, then the head at the masked positions."""
    w, exact = _float64_weights(state), config["hidden_act"] == "gelu"
    dense = lambda x, name: x @ w[name + ".weight"].T + w[name + ".bias"]
    picked = np.take_along_axis(numpy_encoder(state, config, ids, mask), positions[:, :, None], axis=1)
    h = _gelu(dense(picked, "cls.predictions.transform.dense"), exact)
    h = _layer_norm(h, w["cls.predictions.transform.LayerNorm.weight"], w["cls.predictions.transform.LayerNorm.bias"])
    return h @ w["embeddings.word_embeddings.weight"].T + w["cls.predictions.bias"]


def numpy_next_sentence(state, config, ids, mask):
    """The next-sentence logits of BertForPreTraining weights: the pooler (dense + tanh on [CLS]), then dense 2."""
    w = _float64_weights(state)
    pooled = np.tanh(numpy_encoder(state, config, ids, mask)[:, 0] @ w["pooler.dense.weight"].T + w["pooler.dense.bias"])
    return pooled @ w["cls.seq_relationship.weight"].T + w["cls.seq_relationship.bias"]


def _model_inputs():
    ids = np.array([[2, 10, 11, 12, 13, 3, 0, 0], [2, 14, 15, 40, 16, 17, 18, 3]], np.int32)
    mask = (ids != 0).astype(np.int32)
    positions = np.array([[1, 3, 4], [2, 3, 6]], np.int32)
    return ids, mask, positions


def _logits(mlm, ids, mask, positions):
    return np.asarray(mlm.model({"token_ids": ids, "padding_mask": mask, "segment_ids": np.zeros_like(ids),
                                 "masked_lm_positions": positions}, training=False))


def _both_logits(mlm, ids, mask, positions):
    out = mlm.model({"token_ids": ids, "padding_mask": mask, "segment_ids": np.zeros_like(ids),
                     "masked_lm_positions": positions}, training=False)
    return np.asarray(out["logits"]), np.asarray(out["next_sentence_logits"])


def _check_next_sentence_model(mlm, state, config):
    """Both heads of a model with next-sentence prediction against the numpy BERT on `state`."""
    ids, mask, positions = _model_inputs()
    masked_lm, next_sentence = _both_logits(mlm, ids, mask, positions)
    assert np.abs(masked_lm - numpy_masked_lm(state, config, ids, mask, positions)).max() < 1e-4
    expected = numpy_next_sentence(state, config, ids, mask)
    assert np.abs(next_sentence - expected).max() < 1e-5 and np.abs(expected).max() > 0.1
    assert mlm.backbone.get_layer("pooled_dense").trainable  # the pooler trains with next-sentence prediction


@pytest.fixture(scope="module")
def hf_with_head(tiny_checkpoint, tmp_path_factory):
    """The tiny checkpoint with random masked-LM and next-sentence heads added (BertForPreTraining names)."""
    from safetensors.numpy import load_file, save_file

    from checkpoint_factory import random_pretraining_heads

    directory = tmp_path_factory.mktemp("hf_mlm")
    for name in os.listdir(tiny_checkpoint):
        shutil.copy(os.path.join(tiny_checkpoint, name), directory)
    state = {"bert." + k: v for k, v in load_file(os.path.join(tiny_checkpoint, "model.safetensors")).items()}
    config = json.loads((directory / "config.json").read_text())
    state.update(random_pretraining_heads(config["hidden_size"], config["vocab_size"]))
    save_file(state, str(directory / "model.safetensors"))
    return str(directory), state, config


def test_head_from_hf_checkpoint_and_export_match_numpy(hf_with_head, tmp_path):
    from safetensors.numpy import load_file

    from bert_tf import checkpoints
    from bert_tf.pretraining import model as mlm_model

    directory, state, config = hf_with_head
    mlm = mlm_model.load_masked_lm(*checkpoints.load_pretrained(directory))
    assert "tied decoder" in mlm.head_source
    ids, mask, positions = _model_inputs()
    expected = numpy_masked_lm(state, config, ids, mask, positions)
    assert np.abs(_logits(mlm, ids, mask, positions) - expected).max() < 1e-4
    mlm_model.save_hf(mlm, str(tmp_path / "export"))  # a Hugging Face BertForMaskedLM directory
    exported = json.loads((tmp_path / "export" / "config.json").read_text())
    assert exported["architectures"] == ["BertForMaskedLM"] and exported["hidden_act"] == "gelu"
    assert np.abs(numpy_masked_lm(load_file(str(tmp_path / "export" / "model.safetensors")), exported, ids, mask,
                                  positions) - expected).max() < 1e-4
    reloaded = mlm_model.load_masked_lm(*checkpoints.load_pretrained(str(tmp_path / "export")))
    assert np.array_equal(_logits(reloaded, ids, mask, positions), _logits(mlm, ids, mask, positions))


def test_heads_from_tf_model_h5_match_numpy(hf_with_head, tmp_path):
    """transformers' TFBertForPreTraining layout: layer groups bert, mlm___cls and nsp___cls, weights named
    tf_bert_for_pre_training/mlm___cls/predictions/... (the decoder tied to the word embeddings, not stored) and
    tf_bert_for_pre_training/nsp___cls/seq_relationship/kernel [hidden, 2]."""
    import h5py
    from test_checkpoints import tf2_h5_weight

    from bert_tf import checkpoints
    from bert_tf.pretraining import model as mlm_model

    directory, state, config = hf_with_head
    for name in ("config.json", "vocab.txt"):
        shutil.copy(os.path.join(directory, name), tmp_path)
    groups = {"bert": {}, "mlm___cls": {}, "nsp___cls": {}}
    for key, value in state.items():
        if key.startswith("bert."):
            name, array = tf2_h5_weight(key[len("bert."):], value)
            groups["bert"][name.replace("tf_bert_model/", "tf_bert_for_pre_training/")] = array
        elif key.startswith("cls.seq_relationship."):
            leaf = "kernel" if key.endswith(".weight") else "bias"
            groups["nsp___cls"][f"tf_bert_for_pre_training/nsp___cls/seq_relationship/{leaf}:0"] = value.T
        else:
            leaf = {"weight": "kernel" if ".dense." in key else "gamma", "bias": "beta" if "LayerNorm" in key else "bias"}
            path = key.replace("cls.", "mlm___cls.").rsplit(".", 1)
            array = value.T if key == checkpoints.names.HEAD_DENSE_WEIGHT else value
            groups["mlm___cls"]["tf_bert_for_pre_training/" + path[0].replace(".", "/") + "/" + leaf[path[1]] + ":0"] = array
    with h5py.File(tmp_path / "tf_model.h5", "w") as f:
        f.attrs["layer_names"] = [g.encode() for g in groups]
        for group_name, weights in groups.items():
            group = f.create_group(group_name)
            for name, array in weights.items():
                group.create_dataset(name, data=np.asarray(array, np.float32))
            group.attrs["weight_names"] = [n.encode() for n in weights]
    checkpoint, tokenizer = checkpoints.load_pretrained(str(tmp_path))
    mlm = mlm_model.load_masked_lm(checkpoint, tokenizer, next_sentence=checkpoints.read_next_sentence_head(checkpoint))
    assert "tied decoder" in mlm.head_source
    _check_next_sentence_model(mlm, state, config)


def test_head_from_keras_hub_masked_lm_preset_matches_numpy(hf_with_head, tmp_path):
    import keras_hub

    from bert_tf import checkpoints
    from bert_tf.pretraining import model as mlm_model
    from bert_tf.tokenization import WordPieceTokenizer

    directory, state, config = hf_with_head
    backbone = checkpoints.load_backbone(checkpoints.find_checkpoint(directory))
    task = keras_hub.models.BertMaskedLM(backbone=backbone, preprocessor=None)
    mlm_model.assign_head(task.masked_lm_head, {k: v for k, v in state.items() if k.startswith("cls.")}, directory)
    task.save_to_preset(str(tmp_path / "preset"))
    checkpoint = checkpoints.find_checkpoint(str(tmp_path / "preset"))
    assert checkpoint.kind == "keras_hub"
    mlm = mlm_model.load_masked_lm(checkpoint, WordPieceTokenizer.from_model_dir(directory))
    assert "tied decoder" in mlm.head_source and mlm.activation == "gelu_tanh"  # keras-hub's BertBackbone's GELU
    ids, mask, positions = _model_inputs()
    tanh_config = {**config, "hidden_act": "gelu_tanh"}
    assert np.abs(_logits(mlm, ids, mask, positions) - numpy_masked_lm(state, tanh_config, ids, mask, positions)).max() < 1e-4
    backbone.save_to_preset(str(tmp_path / "backbone_only"))
    assert checkpoints.read_masked_lm_head(checkpoints.find_checkpoint(str(tmp_path / "backbone_only"))) is None


def test_head_from_tf1_checkpoint_matches_numpy(hf_with_head, tmp_path):
    from checkpoint_factory import tf1_tensors, write_tf1_checkpoint

    from bert_tf import checkpoints
    from bert_tf.pretraining import model as mlm_model

    directory, state, config = hf_with_head
    backbone = {k[len("bert."):]: v for k, v in state.items() if k.startswith("bert.")}
    tensors = tf1_tensors(backbone)
    for key, name in checkpoints.tf1.TF1_HEAD_NAMES.items():
        tensors[name] = state[key].T if key == checkpoints.names.HEAD_DENSE_WEIGHT else state[key]
    write_tf1_checkpoint(str(tmp_path / "bert_model.ckpt"), tensors)
    (tmp_path / "bert_config.json").write_text(json.dumps({**config, "hidden_act": "gelu"}))
    shutil.copy(os.path.join(directory, "vocab.txt"), tmp_path)
    mlm = mlm_model.load_masked_lm(*checkpoints.load_pretrained(str(tmp_path)))
    assert mlm.activation == "gelu_tanh" and "tied decoder" in mlm.head_source  # Google's gelu is the tanh form
    ids, mask, positions = _model_inputs()
    expected = numpy_masked_lm(state, {**config, "hidden_act": "gelu_new"}, ids, mask, positions)
    assert np.abs(_logits(mlm, ids, mask, positions) - expected).max() < 1e-4


def test_next_sentence_head_from_hf_and_export_match_numpy(hf_with_head, tiny_checkpoint, tmp_path):
    """cls.seq_relationship from safetensors; the export is a BertForPreTraining directory with the head, which
    a phase-2 run reads again; a checkpoint without the head has none to read."""
    from safetensors.numpy import load_file

    from bert_tf import checkpoints
    from bert_tf.pretraining import model as mlm_model

    directory, state, config = hf_with_head
    checkpoint, tokenizer = checkpoints.load_pretrained(directory)
    head = checkpoints.read_next_sentence_head(checkpoint)
    mlm = mlm_model.load_masked_lm(checkpoint, tokenizer, next_sentence=head)
    _check_next_sentence_model(mlm, state, config)
    mlm_model.save_hf(mlm, str(tmp_path / "export"))
    exported = json.loads((tmp_path / "export" / "config.json").read_text())
    assert exported["architectures"] == ["BertForPreTraining"]
    saved = load_file(str(tmp_path / "export" / "model.safetensors"))
    assert saved["cls.seq_relationship.weight"].shape == (2, config["hidden_size"])
    ids, mask, _ = _model_inputs()
    assert np.abs(numpy_next_sentence(saved, exported, ids, mask) - numpy_next_sentence(state, config, ids, mask)).max() < 1e-5
    again = checkpoints.read_next_sentence_head(checkpoints.find_checkpoint(str(tmp_path / "export")))
    assert all(np.array_equal(again[k], state[k]) for k in again)
    assert checkpoints.read_next_sentence_head(checkpoints.find_checkpoint(tiny_checkpoint)) is None
    plain = mlm_model.load_masked_lm(checkpoint, tokenizer)  # masked LM alone: the pooler stays as loaded
    assert plain.next_sentence is None and not plain.backbone.get_layer("pooled_dense").trainable


def test_next_sentence_head_from_tf1_checkpoint_matches_numpy(hf_with_head, tmp_path):
    """Google's/BioBERT's cls/seq_relationship/output_weights [2, hidden] and output_bias."""
    from checkpoint_factory import tf1_head_tensors, tf1_tensors, write_tf1_checkpoint

    from bert_tf import checkpoints
    from bert_tf.pretraining import model as mlm_model

    directory, state, config = hf_with_head
    tensors = tf1_tensors({k[len("bert."):]: v for k, v in state.items() if k.startswith("bert.")})
    tensors.update(tf1_head_tensors({k: v for k, v in state.items() if k.startswith("cls.")}))
    write_tf1_checkpoint(str(tmp_path / "bert_model.ckpt"), tensors)
    (tmp_path / "bert_config.json").write_text(json.dumps({**config, "hidden_act": "gelu"}))
    shutil.copy(os.path.join(directory, "vocab.txt"), tmp_path)
    checkpoint, tokenizer = checkpoints.load_pretrained(str(tmp_path))
    mlm = mlm_model.load_masked_lm(checkpoint, tokenizer, next_sentence=checkpoints.read_next_sentence_head(checkpoint))
    _check_next_sentence_model(mlm, state, {**config, "hidden_act": "gelu_new"})  # Google's gelu: the tanh form


def _one_update(checkpoint_dir, batch, accumulation_steps, strategy, next_sentence=False, initial=None):
    """(the trainable weights, the step's training-history row) after one LAMB update on `batch` (dropout off)
    under `strategy`; with `next_sentence` masked LM + next-sentence prediction (the checkpoint's heads). The
    weights before the update go into the dict `initial` (by path) when one is given."""
    import tensorflow as tf

    from bert_tf import checkpoints, optimization
    from bert_tf.pretraining import model as mlm_model, objective
    from bert_tf.training import Trainer

    checkpoint, tokenizer = checkpoints.load_pretrained(checkpoint_dir)
    head = checkpoints.read_next_sentence_head(checkpoint) if next_sentence else None
    with strategy.scope():
        mlm = mlm_model.load_masked_lm(checkpoint, tokenizer, dropout=0.0, next_sentence=head)
        optimizer = optimization.make_optimizer("lamb", 1e-3, 0.01)
    signature = {key: tf.TensorSpec([None] * v.ndim, tf.int32) for key, v in batch.items()}
    dataset = tf.data.Dataset.from_generator(lambda: iter([batch]), output_signature=signature)
    trainer = Trainer(mlm.model, optimizer, strategy, passthrough_keys=(LABELS,), verbose=False,
                      feature_keys=mlm_model.MODEL_INPUTS, accumulation_steps=accumulation_steps,
                      losses=objective.losses(next_sentence))
    if initial is not None:
        initial.update((v.path, v.numpy()) for v in mlm.model.trainable_variables)
    trainer.fit(lambda epoch, first: (dataset, 1), epochs=1)
    return [v.numpy() for v in mlm.model.trainable_variables], trainer.history[-1]


MIRRORED_UPDATE = """
import sys
import numpy as np
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
sys.path.insert(0, sys.argv[1])
from test_pretraining import _one_update
from bert_tf import distribution
weights, _ = _one_update(sys.argv[2], dict(np.load(sys.argv[3])), 2, distribution.make_strategy("mirrored"), True)
np.savez(sys.argv[4], *weights)
"""


def _mean_cross_entropy(logits, labels):
    keep = labels != IGNORE_LABEL
    rows, gold = logits[keep], labels[keep]
    top = rows.max(-1, keepdims=True)
    log_norm = np.log(np.exp(rows - top).sum(-1)) + top[:, 0]
    return float(np.mean(log_norm - rows[np.arange(len(gold)), gold]))


def test_gradient_accumulation_equals_one_large_batch(hf_with_head, tokenizer, tmp_path):
    """Masked LM + next-sentence prediction: k micro-batches of 2 and one batch of 8 give the same update (dropout
    off), though the micro-batches hold different numbers of masked positions (so averaging per micro-batch would
    differ); also with the batch split over 2 replicas (MirroredStrategy on 2 logical CPUs, in a subprocess) and 2
    micro-batches on each. The step's loss is the numpy masked-LM loss + next-sentence loss, each reported too."""
    import tensorflow as tf

    from bert_tf.pretraining.tfrecords import NSP_FEATURE

    documents = [[" ".join(TINY_WORDS[(i * 5 + j) % 22] for j in range(3 + 4 * (i % 5)))] for i in range(16)]
    data = _stream(tokenizer, tmp_path / "text", documents, max_seq_length=16, batch_size=8)
    blocks = sorted(enumerate(data.corpus.blocks(0, False)), key=lambda item: len(item[1]))
    picked = [blocks[i] for i in np.linspace(0, len(blocks) - 1, 8).astype(int)]  # short blocks to long
    batch = masking.masked_batch(picked, data.corpus.is_continuation, data.masking, 3, 0, tokenizer.pad_id)
    batch[NSP_FEATURE] = np.array([0, 1, 1, 0, 0, 0, 1, 0], np.int32)
    per_micro_batch = (batch[LABELS] != IGNORE_LABEL).reshape(4, -1).sum(axis=1)
    assert len(set(per_micro_batch.tolist())) > 1
    np.savez(tmp_path / "batch.npz", **batch)
    mirrored = subprocess.Popen(  # runs while this process computes the one-device updates
        [sys.executable, "-c", MIRRORED_UPDATE, str(ROOT / "tests"), hf_with_head[0], str(tmp_path / "batch.npz"),
         str(tmp_path / "mirrored.npz")], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=dict(os.environ, CUDA_VISIBLE_DEVICES=""))
    try:
        initial = {}
        (one, row), (four, _) = (_one_update(hf_with_head[0], batch, k, tf.distribute.get_strategy(), True,
                                             initial if k == 1 else None) for k in (1, 4))
        _, stderr = mirrored.communicate(timeout=600)
    finally:
        if mirrored.poll() is None:
            mirrored.kill()
    changed = {path: float(np.abs(a - b).max()) for (path, a), b in zip(initial.items(), one)}
    heads = [changed[p] for p in changed if p.startswith(("pooled_dense/", "next_sentence/"))]
    assert len(heads) == 4 and min(heads) > 1e-6, changed  # it trained, the pooler and next-sentence head too
    assert max(float(np.abs(a - b).max()) for a, b in zip(one, four)) < 1e-5
    assert mirrored.returncode == 0, stderr[-3000:]
    across = np.load(tmp_path / "mirrored.npz")
    assert max(float(np.abs(a - across[f"arr_{i}"]).max()) for i, a in enumerate(one)) < 1e-5
    _, state, config = hf_with_head
    ids, mask, positions = batch[TOKEN_IDS], batch["padding_mask"], batch["masked_lm_positions"]
    masked_lm = _mean_cross_entropy(numpy_masked_lm(state, config, ids, mask, positions), batch[LABELS])
    next_sentence = _mean_cross_entropy(numpy_next_sentence(state, config, ids, mask), batch[NSP_FEATURE])
    assert row["masked_lm_loss"] == pytest.approx(masked_lm, rel=1e-5)
    assert row["next_sentence_loss"] == pytest.approx(next_sentence, rel=1e-5)
    assert row["loss"] == pytest.approx(masked_lm + next_sentence, rel=1e-5)


def test_training_accuracy_from_running_counts():
    """The epoch's training accuracies from counts (memory does not grow with the epoch), through a resume."""
    from bert_tf.pretraining.objective import NSP_PREDS
    from bert_tf.pretraining.tfrecords import NSP_FEATURE
    from bert_tf.pretraining.training_accuracy import TrainingAccuracy

    steps = [{"preds": np.array([[5, 6, 7], [8, 9, 9]]), LABELS: np.array([[5, 0, IGNORE_LABEL], [8, 9, 1]]),
              NSP_PREDS: np.array([0, 1]), NSP_FEATURE: np.array([0, 0])},
             {"preds": np.array([[1, 2, 3]]), LABELS: np.array([[1, IGNORE_LABEL, IGNORE_LABEL]]),
              NSP_PREDS: np.array([1]), NSP_FEATURE: np.array([1])}]
    scores = TrainingAccuracy(True)
    scores.add(steps[0])
    resumed = TrainingAccuracy(True)
    resumed.set_state(scores.get_state())
    resumed.add(steps[1])
    assert resumed.running() == {"accuracy": 4 / 6, "next_sentence_accuracy": 2 / 3}
    assert resumed.result() == {"accuracy": 4 / 6, "next_sentence_accuracy": 2 / 3} and resumed.result() == {}
    alone = TrainingAccuracy(False)
    alone.add({k: v for k, v in steps[0].items() if k in ("preds", LABELS)})
    assert alone.result() == {"accuracy": 3 / 5}


# --- NVIDIA TFRecords --------------------------------------------------------------------------------------------


def _write_records(path, count, max_seq_length=16, max_predictions=4, drop=None):
    import tensorflow as tf

    rng = np.random.default_rng(0)
    ints = lambda v: tf.train.Feature(int64_list=tf.train.Int64List(value=list(map(int, v))))
    with tf.io.TFRecordWriter(str(path)) as writer:
        for i in range(count):
            features = {"input_ids": ints(rng.integers(5, 50, max_seq_length)), "input_mask": ints([1] * max_seq_length),
                        "segment_ids": ints([0] * max_seq_length), "masked_lm_positions": ints([1, 2, 3, 0]),
                        "masked_lm_ids": ints([7, 8, 9, 0]), "next_sentence_labels": ints([i % 2]),
                        "masked_lm_weights": tf.train.Feature(float_list=tf.train.FloatList(value=[1, 1, 1, 0]))}
            features.pop(drop, None)
            writer.write(tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString())


def test_nvidia_tfrecords_read(tmp_path):
    from bert_tf.pretraining import tfrecords
    from bert_tf.pretraining.masking import MASKED_POSITIONS

    _write_records(tmp_path / "a.tfrecord", 5)
    _write_records(tmp_path / "b.tfrecord", 3)
    files = [str(tmp_path / "a.tfrecord"), str(tmp_path / "b.tfrecord")]
    assert tfrecords.are_tfrecords(files)
    data = tfrecords.TFRecordData(files, 16, 4, 2, seed=1)
    assert data.num_records == 8 and data.steps_per_epoch == 4
    batches = list(data.epoch_dataset(0, 0, 4).as_numpy_iterator())
    assert len(batches) == 4 and batches[0][TOKEN_IDS].shape == (2, 16)
    assert batches[0][LABELS].tolist() == [[7, 8, 9, IGNORE_LABEL]] * 2  # weight 0: no label
    assert batches[0][MASKED_POSITIONS].tolist() == [[1, 2, 3, 0]] * 2
    again = list(data.epoch_dataset(0, 2, 4).as_numpy_iterator())  # resuming at step 2
    assert len(again) == 2 and all(np.array_equal(a[TOKEN_IDS], b[TOKEN_IDS]) for a, b in zip(again, batches[2:]))
    dataset, count = data.eval_dataset(3)
    assert count == 3 and len(list(dataset.as_numpy_iterator())) == 3
    assert data.has_next_sentence_labels and tfrecords.NSP_FEATURE not in batches[0]  # read only when trained
    data.next_sentence = True
    held = list(data.eval_dataset(8)[0].as_numpy_iterator())[0]
    assert held[tfrecords.NSP_FEATURE].tolist() == [0, 1, 0, 1, 0, 0, 1, 0]  # i % 2 in each file, files in order
    _write_records(tmp_path / "bad.tfrecord", 2, drop="masked_lm_weights")
    with pytest.raises(InputError, match="record 1 has no feature 'masked_lm_weights'"):
        tfrecords.TFRecordData([str(tmp_path / "bad.tfrecord")], 16, 4, 2)
    with pytest.raises(InputError, match="holds 16 values, expected 32"):
        tfrecords.TFRecordData(files, 32, 4, 2)
    (tmp_path / "empty.tfrecord").write_bytes(b"")
    with pytest.raises(InputError, match="empty.tfrecord: no records"):
        tfrecords.TFRecordData([str(tmp_path / "empty.tfrecord")], 16, 4, 2)
    (tmp_path / "cut.tfrecord").write_bytes((tmp_path / "a.tfrecord").read_bytes()[:-10])
    with pytest.raises(InputError, match=r"cut.tfrecord: record 5 is damaged or truncated \(truncated record at \d+"):
        tfrecords.TFRecordData([str(tmp_path / "cut.tfrecord")], 16, 4, 2)


# --- the script ------------------------------------------------------------------------------------------------


def _text_corpus(directory, seed=0):
    """Two text files of 40 documents: sentences that repeat a few patterns (learnable in a few steps)."""
    import random

    r = random.Random(seed)
    directory.mkdir()
    patterns = [["alice", "met", "bob", "in", "paris"], ["carol", "visited", "rome", "and", "oslo"],
                ["dave", "went", "to", "lima", "at", "acme", "corp"]]
    for f in range(2):
        lines = [" ".join(w for _ in range(r.randint(1, 4)) for w in r.choice(patterns) + ["."]) for _ in range(40)]
        (directory / f"part{f}.txt").write_text("\n\n".join(lines) + "\n", encoding="utf-8")  # a line a document
    return str(directory / "*.txt")


def unigram_perplexity(pattern: str) -> float:
    """The perplexity of predicting every masked word from the corpus's word frequencies alone: exp of their
    entropy (every corpus word is one piece of the tiny vocabulary, so words are the pieces masked)."""
    import glob
    from collections import Counter

    counts = Counter(w for path in glob.glob(pattern) for w in Path(path).read_text(encoding="utf-8").split())
    assert set(counts) <= set(TINY_WORDS)
    p = np.array(list(counts.values()), np.float64) / sum(counts.values())
    return float(np.exp(-(p * np.log(p)).sum()))


def _command(checkpoint, text, out, *extra):
    return ["run_pretraining.py", f"--bert_model={checkpoint}", f"--input_files={text}", f"--output_dir={out}",
            "--max_seq_length=32", "--max_predictions_per_seq=5", "--train_batch_size=8", "--learning_rate=5e-3",
            "--optimizer_type=adamw", "--num_train_steps=64", "--num_warmup_steps=4", "--seed=42", "--eval_fraction=0.1",
            "--save_checkpoints_steps=32", "--deterministic", "--log_every=8", "--notensorboard", *extra]


# The end-to-end run (learns, evaluates alone, fine-tunes) is resumed after a real SIGKILL: test_kill_resume.py.


NSP_COMMAND = ["--max_seq_length=16", "--max_predictions_per_seq=4", "--eval_batch_size=4", "--seed=42",
               "--verbose=false"]


def _nsp_records(folder):
    """Training records with next-sentence labels (24), held-out ones (8), and records without the labels (8)."""
    folder.mkdir()
    _write_records(folder / "train.tfrecord", 24)
    _write_records(folder / "eval.tfrecord", 8)
    _write_records(folder / "plain.tfrecord", 8, drop="next_sentence_labels")
    return {name: str(folder / f"{name}.tfrecord") for name in ("train", "eval", "plain")}


def _event_tags(folder):
    import tensorflow as tf

    return {value.tag for path in folder.iterdir() for event in tf.compat.v1.train.summary_iterator(str(path))
            for value in event.summary.value}


def test_next_sentence_prediction_trains_reports_exports_and_resumes_bitwise(hf_with_head, tmp_path):
    """Records with next_sentence_labels and a checkpoint with the head: masked LM + next-sentence prediction,
    both figures held out and in the history, curves and TensorBoard; the export is a BertForPreTraining directory
    that the fine-tuning scripts load; a run killed after step 5 (second epoch) resumes to the same weights."""
    from safetensors.numpy import load_file

    from bert_tf import checkpoints

    records = _nsp_records(tmp_path / "records")
    args = [f"--bert_model={hf_with_head[0]}", f"--input_files={records['train']}",
            f"--eval_files_dir={records['eval']}", "--output_dir={out}", *NSP_COMMAND, "--train_batch_size=8",
            "--num_train_steps=6", "--num_warmup_steps=1", "--learning_rate=1e-3",
            "--optimizer_type=adamw", "--save_checkpoints_steps=2", "--deterministic", "--log_every=2"]
    process = run_script([FAULT_INJECTION, "--matrix", tmp_path / "m", "kill_after_step=5", "run_pretraining.py",
                          *args])
    assert process.returncode == 0, process.stderr[-3000:]
    matrix = json.loads((tmp_path / "m" / "matrix.json").read_text())
    assert matrix["reference"]["statuses"] == [0] and matrix["chain-0"]["statuses"] == [-9, 0]
    ref, run = tmp_path / "m" / "reference", tmp_path / "m" / "chain-0"
    assert f"next-sentence prediction  on (labels in the TFRecords, head from {hf_with_head[0]})" in process.stdout
    assert "with next-sentence labels" in process.stdout
    results = json.loads((ref / "eval_results.json").read_text())
    for side in ("before", "after"):
        figures = results[side]
        assert set(figures) == {"loss", "accuracy", "perplexity", "masked_lm_loss", "next_sentence_loss",
                                "next_sentence_accuracy"}
        assert figures["loss"] == pytest.approx(figures["masked_lm_loss"] + figures["next_sentence_loss"])
        assert figures["perplexity"] == pytest.approx(math.exp(figures["masked_lm_loss"]))
    assert json.loads((run / "eval_results.json").read_text()) == results
    weights = [load_file(str(d / "model" / "model.safetensors")) for d in (ref, run)]
    assert weights[0].keys() == weights[1].keys() and all(np.array_equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert not np.array_equal(weights[0]["cls.seq_relationship.weight"], hf_with_head[1]["cls.seq_relationship.weight"])
    assert json.loads((ref / "model" / "config.json").read_text())["architectures"] == ["BertForPreTraining"]
    history = [(d / "history.csv").read_text().splitlines() for d in (ref, run)]
    header = history[0][0].split(",")
    assert {"masked_lm_loss", "next_sentence_loss", "next_sentence_accuracy"} <= set(header)
    drop = header.index("seconds")
    assert [r.split(",")[:drop] + r.split(",")[drop + 1:] for r in history[0]] == \
        [r.split(",")[:drop] + r.split(",")[drop + 1:] for r in history[1]]
    for name in ("next_sentence_loss", "next_sentence_accuracy", "masked_lm_loss", "perplexity"):
        assert (ref / f"{name}.png").is_file()
    assert 'alt="next_sentence_accuracy"' in (ref / "report.html").read_text()
    assert {"loss", "masked_lm_loss", "next_sentence_loss"} <= _event_tags(ref / "tensorboard" / "train")
    assert {"next_sentence_loss", "next_sentence_accuracy", "masked_lm_loss"} <= _event_tags(
        ref / "tensorboard" / "validation")
    checkpoint, tokenizer = checkpoints.load_pretrained(str(ref))  # what run_ner.py --bert_model does
    assert checkpoints.build_task_model(checkpoint, tokenizer, ["O", "B-X"], "token", 0.1).backbone.num_layers == 2


def _nsp_config(**settings):
    from bert_tf.pretraining.config import PretrainingConfig

    return PretrainingConfig(max_seq_length=16, max_predictions_per_seq=4, eval_batch_size=4, seed=42, verbose=False,
                             **settings)


def test_next_sentence_prediction_off_unless_labels_and_head(hf_with_head, tiny_checkpoint, tmp_path, capsys):
    """Evaluation alone (no training) says in the run table whether next-sentence prediction is on and why; files
    of which only some carry next_sentence_labels, or held-out records without them, fail with one line naming
    the file, and nothing written (in-process, through the runner: bert_tf.pretraining.run)."""
    from bert_tf.pretraining import run

    records = _nsp_records(tmp_path / "records")
    evaluate = lambda checkpoint, held, out, **extra: _nsp_config(
        bert_model=checkpoint, do_train=False, eval_files_dir=held, output_dir=str(tmp_path / out), **extra)
    train = lambda files, held, out: _nsp_config(bert_model=hf_with_head[0], input_files=files, eval_files_dir=held,
                                                 output_dir=str(tmp_path / out), num_train_steps=2)
    stdout = {}
    for name, cfg in {
        "on": evaluate(hf_with_head[0], records["eval"], "on"),
        "no_head": evaluate(tiny_checkpoint, records["eval"], "no_head"),
        "no_labels": evaluate(hf_with_head[0], records["plain"], "no_labels"),
        "off": evaluate(hf_with_head[0], records["eval"], "off", next_sentence_prediction="off"),
    }.items():
        result = run.run(cfg)
        assert result.evaluated == json.loads((tmp_path / name / "eval_results.json").read_text())["eval"]
        stdout[name] = capsys.readouterr().out
    assert "next-sentence prediction  on (labels in the TFRecords" in stdout["on"]
    on = json.loads((tmp_path / "on" / "eval_results.json").read_text())["eval"]
    assert on["loss"] == pytest.approx(on["masked_lm_loss"] + on["next_sentence_loss"])
    assert "next-sentence prediction  off (the checkpoint has no next-sentence head" in stdout["no_head"]
    assert "next-sentence prediction  off (the TFRecords carry no next_sentence_labels)" in stdout["no_labels"]
    assert "next-sentence prediction  off (--next_sentence_prediction=off)" in stdout["off"]
    for name in ("no_head", "no_labels", "off"):
        figures = json.loads((tmp_path / name / "eval_results.json").read_text())["eval"]
        assert set(figures) == {"loss", "accuracy", "perplexity"}, name
        assert figures["perplexity"] == pytest.approx(math.exp(figures["loss"]), rel=1e-5), name
    off = json.loads((tmp_path / "off" / "eval_results.json").read_text())["eval"]
    assert off["loss"] == pytest.approx(on["masked_lm_loss"], rel=1e-5)  # the same masked LM, its head alone
    with pytest.raises(InputError) as mixed:
        run.run(train(f"{records['train']},{records['plain']}", records["eval"], "mixed"))
    assert str(mixed.value) == (
        f"{records['plain']}: record 1 has no feature 'next_sentence_labels' and {records['train']} does: "
        "every file or none must carry it")
    with pytest.raises(InputError) as held_without:
        run.run(train(records["train"], records["plain"], "held_without"))
    assert str(held_without.value) == (
        f"{records['plain']}: the held-out records carry no next_sentence_labels while the training records "
        "do (or give --next_sentence_prediction=off)")
    assert not (tmp_path / "mixed").exists() and not (tmp_path / "held_without").exists()


def _topic_text(path, documents, seed):
    """Google-format text whose documents each repeat one topic's words (a random next sentence is mostly of
    another topic, so next-sentence prediction can be learned)."""
    import random

    r = random.Random(seed)
    topics = [["alice", "met", "bob", "in", "paris"], ["carol", "visited", "rome", "and", "oslo"],
              ["dave", "went", "to", "lima", "at", "acme", "corp"], ["hello", "x", "y", "z", "the"]]
    path.write_text("\n\n".join("\n".join(" ".join(r.sample(topics[d % 4], len(topics[d % 4]))) + " ."
                                          for _ in range(r.randint(4, 8))) for d in range(documents)) + "\n")
    return str(path)


def test_next_sentence_prediction_trains_from_create_pretraining_data_records(hf_with_head, tmp_path, capsys):
    """Records written by python -m bert_tf.pretraining.create_pretraining_data: run_pretraining's runner trains
    masked LM and next-sentence prediction from them (held-out loss of both falls; twelve steps are too few for the
    next-sentence part alone to fall reliably, so that is not asserted; the next-sentence head's weights move)."""
    from safetensors.numpy import load_file

    from bert_tf.pretraining import run
    from bert_tf.pretraining.config import PretrainingDataConfig
    from bert_tf.pretraining.create_pretraining_data import run as write_records

    records = {}
    for name, documents, dupe_factor in (("train", 24, 3), ("eval", 8, 1)):
        records[name] = str(tmp_path / f"{name}.tfrecord")
        write_records(PretrainingDataConfig(
            input_file=_topic_text(tmp_path / f"{name}.txt", documents, len(records)), output_file=records[name],
            vocab_file=os.path.join(hf_with_head[0], "vocab.txt"), max_seq_length=16, max_predictions_per_seq=4,
            dupe_factor=dupe_factor, random_seed=5))
    result = run.run(_nsp_config(bert_model=hf_with_head[0], input_files=records["train"],
                                 eval_files_dir=records["eval"], output_dir=str(tmp_path / "out"),
                                 train_batch_size=8, num_train_steps=12, num_warmup_steps=2, learning_rate=3e-3,
                                 optimizer_type="adamw", tensorboard=False))
    assert "next-sentence prediction  on (labels in the TFRecords" in capsys.readouterr().out
    before, after = result.before, result.after
    assert {"masked_lm_loss", "next_sentence_loss", "next_sentence_accuracy"} <= set(after)
    assert after["loss"] < before["loss"] - 0.2, (before, after)
    trained = load_file(str(tmp_path / "out" / "model" / "model.safetensors"))
    assert not np.allclose(trained["cls.seq_relationship.weight"], hf_with_head[1]["cls.seq_relationship.weight"])


def test_bad_input_exits_2_and_writes_nothing(tiny_checkpoint, tmp_path):
    """An empty text file; the command also carries the published recipe's own flags (they parse)."""
    (tmp_path / "in.txt").write_text("", encoding="utf-8")
    published = ["--do_train=True", "--do_eval=True", "--eval_batch_size=8", "--report_loss", "--horovod",
                 "--use_fp16", "--use_xla", "--num_accumulation_steps=2"]
    process = run_script(_command(tiny_checkpoint, tmp_path / "in.txt", tmp_path / "out", *published))
    assert process.returncode == 2, process.stderr[-1000:]
    assert error_lines(process) == [f"error: {tmp_path / 'in.txt'}: empty file: no text to pretrain on"]
    assert not (tmp_path / "out").exists()
    assert "--horovod: no MPI launch: one process" in process.stdout  # as Horovod with one rank


def test_checkpoint_without_vocabulary(tiny_checkpoint, tmp_path):
    from bert_tf import checkpoints

    for name in os.listdir(tiny_checkpoint):
        if name != "vocab.txt":
            shutil.copy(os.path.join(tiny_checkpoint, name), tmp_path)
    with pytest.raises(InputError, match="no vocabulary"):
        checkpoints.load_pretrained(str(tmp_path))
