"""--bert_model=<Hub id> against a local stand-in for the Hugging Face Hub (tests/hub_server.py, HF_ENDPOINT):
download into an empty cache, then the same id offline from that cache; unknown revisions and repositories;
the chief downloads while another worker waits (issue 24)."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import ROOT, error_lines
from hub_server import HubServer
from test_front_door import run_in

from bert_tf import hub, checkpoints
from bert_tf.errors import InputError
from bert_tf.ner.config import PUBLISHED_NER_MODEL

COMMIT = "4f2a9c0b7e1d3a5c6b8e0f1a2c3d4e5f6a7b8c9d"
NEEDED = ["config.json", "model.safetensors", "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json",
          "vocab.txt"]
NOT_NEEDED = ["README.md", "modules.json", "config_sentence_transformers.json"]  # on the Hub, never downloaded


@pytest.fixture()
def live_hub(tmp_path, minilm, monkeypatch):
    """MiniLM's files served as PUBLISHED_NER_MODEL at COMMIT; HF_HOME an empty folder; online."""
    from huggingface_hub import constants

    with HubServer(PUBLISHED_NER_MODEL, COMMIT, minilm, NEEDED + NOT_NEEDED) as server:
        home = tmp_path / "hf_home"
        for name, value in (("HF_HOME", str(home)), ("HF_ENDPOINT", server.url)):
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("HF_HUB_CACHE", raising=False)
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        monkeypatch.setattr(constants, "HF_HUB_CACHE", str(home / "hub"))
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(constants, "ENDPOINT", server.url)
        monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE",
                            server.url + "/{repo_id}/resolve/{revision}/{filename}")
        yield server


def snapshot_of(home: Path) -> Path:
    """Where huggingface_hub keeps PUBLISHED_NER_MODEL at COMMIT under HF_HOME."""
    return home / "hub" / ("models--" + PUBLISHED_NER_MODEL.replace("/", "--")) / "snapshots" / COMMIT


def test_hub_id_downloads_into_an_empty_cache_then_resolves_offline(live_hub, tmp_path, minilm, monkeypatch):
    from huggingface_hub import constants

    checkpoint, tokenizer = checkpoints.load_pretrained(PUBLISHED_NER_MODEL)
    snapshot = snapshot_of(tmp_path / "hf_home")
    assert checkpoint.kind == "hf" and Path(checkpoint.path) == snapshot
    assert sorted(os.listdir(snapshot)) == NEEDED  # one weight file and the tokenizer files, not the rest
    assert (snapshot / "model.safetensors").read_bytes() == (Path(minilm) / "model.safetensors").read_bytes()
    assert tokenizer.vocab_size == len((Path(minilm) / "vocab.txt").read_text(encoding="utf-8").splitlines())
    assert checkpoint.hub == {"hub_id": PUBLISHED_NER_MODEL, "revision": "main", "commit": COMMIT,
                              "snapshot": str(snapshot)}
    assert checkpoint.source_rows() == {"hub": f"{PUBLISHED_NER_MODEL} revision main = commit {COMMIT} ({snapshot})"}
    downloads = [path for method, path in live_hub.requests if method == "GET" and "/resolve/" in path]
    assert sorted(path.rsplit("/", 1)[1] for path in downloads) == NEEDED  # each file fetched once

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    asked = len(live_hub.requests)
    for revision in (None, "main", COMMIT):
        assert hub.resolve_hub_model(PUBLISHED_NER_MODEL, revision).path == str(snapshot)
    assert len(live_hub.requests) == asked  # offline: the cache alone


def test_unknown_repository_on_the_live_hub_is_one_line(live_hub, tmp_path):
    with pytest.raises(InputError) as caught:
        hub.resolve_hub_model("TurkuNLP/no-such-model")
    assert caught.value.message == ("--bert_model=TurkuNLP/no-such-model: not a local path, and no such model on "
                                    "the Hugging Face Hub")
    assert not snapshot_of(tmp_path / "hf_home").exists()


def test_unknown_revision_on_the_live_hub_stops_run_ner_writing_nothing(live_hub, tmp_path):
    out = tmp_path / "run"
    done = run_in(ROOT, [sys.executable, "run_ner.py", f"--bert_model={PUBLISHED_NER_MODEL}", "--revision=v9",
                         f"--data_path={ROOT / 'data' / 'demo' / 'ner'}", f"--save_model_path={out}"],
                  {"HF_HOME": os.environ["HF_HOME"], "HF_ENDPOINT": live_hub.url}, timeout=300)
    assert done.returncode == 2, done.stderr[-2000:]
    assert error_lines(done) == [f"error: --revision=v9: no such revision of {PUBLISHED_NER_MODEL} on the Hugging "
                                 "Face Hub"]
    assert ("GET", f"/api/models/{PUBLISHED_NER_MODEL}/revision/v9") in live_hub.requests
    assert not out.exists() and not snapshot_of(tmp_path / "hf_home").exists()


def test_the_chief_downloads_while_another_worker_waits(live_hub, tmp_path):
    results = {}
    worker_naps = []

    def worker() -> None:
        results["worker"] = hub.resolve_hub_model(  # naps of 0.1 s counted as 5 s: 72 s at most
            PUBLISHED_NER_MODEL, chief=False, sleep=lambda s: (worker_naps.append(s), time.sleep(0.1)))

    waiting = threading.Thread(target=worker)
    waiting.start()
    while not worker_naps:  # the worker found no complete snapshot and waits for the chief's marker
        assert waiting.is_alive(), "the worker stopped before waiting"
        time.sleep(0.01)
    results["chief"] = hub.resolve_hub_model(PUBLISHED_NER_MODEL, chief=True)
    waiting.join(timeout=60)
    assert not waiting.is_alive()
    assert results["worker"] == results["chief"] and results["chief"].path == str(snapshot_of(tmp_path / "hf_home"))
    downloads = [path for method, path in live_hub.requests if method == "GET" and "/resolve/" in path]
    assert len(downloads) == len(NEEDED)  # only the chief asked for the files
