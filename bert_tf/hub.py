"""Models named by a Hugging Face Hub id (`TurkuNLP/bert-base-finnish-cased-v1`) or a keras-hub preset handle.

A Hub id is resolved with `huggingface_hub` into its standard cache (`HF_HOME` / `HF_HUB_CACHE`), at
`--revision` when given: a snapshot already in the cache is used as it is (offline, `HF_HUB_OFFLINE=1`, or
without a network); otherwise it is downloaded, only the files a BERT needs (config, vocabulary, tokenizer
files, one weight format: safetensors, else tf_model.h5, else pytorch_model.bin). Under a multi-worker run only
the chief downloads; the others wait for its marker (written after the last file is in place), so no worker
reads a half-downloaded snapshot. keras-hub preset handles (`kaggle://...`, preset names such as
`bert_base_en`) go through keras-hub's own loader; `hf://OWNER/NAME` is the Hub id OWNER/NAME.
"""

from __future__ import annotations

import dataclasses
import os
import re
import time
from typing import Callable, List, Optional, Sequence

from bert_tf.errors import InputError
from bert_tf.io_utils import write_text_atomic

HUB_ID = re.compile(r"^[^/\s]+/[^/\s]+$")  # owner/name; huggingface_hub validates the characters
PRESET_SCHEMES = ("kaggle://", "modelscope://", "gs://")
HF_SCHEME = "hf://"
SIDE_FILES = ("config.json", "bert_config.json", "vocab.txt", "tokenizer.json", "tokenizer_config.json",
              "special_tokens_map.json")
# Weight files in order of preference; the first present in the repository is downloaded (with its shards).
WEIGHT_CHOICES = (("model.safetensors",), ("model.safetensors.index.json", "model-*.safetensors"), ("tf_model.h5",),
                  ("pytorch_model.bin",), ("pytorch_model.bin.index.json", "pytorch_model-*.bin"))
READY_DIR = ".bert_tf_ready"  # in the Hub cache: a marker per downloaded (id, revision), written last
WAIT_SECONDS = 3600.0


@dataclasses.dataclass(frozen=True)
class HubModel:
    """A Hub id resolved to a local snapshot: the folder, the commit hash it holds, the revision asked for."""

    repo_id: str
    revision: Optional[str]
    commit: str
    path: str

    def record(self) -> dict:
        """What run_config.json and the run table record."""
        return {"hub_id": self.repo_id, "revision": self.revision or "main", "commit": self.commit,
                "snapshot": self.path}


def is_preset_handle(name: str) -> bool:
    """A keras-hub preset handle (`kaggle://...`, `modelscope://...`, `gs://...`) or a keras-hub built-in preset
    name, not a local path (`hf://OWNER/NAME` is resolved as the Hub id OWNER/NAME, see hub_id_of)."""
    if os.path.exists(name) or name.startswith(HF_SCHEME):
        return False
    if name.startswith(PRESET_SCHEMES):
        return True
    from keras_hub.src.utils import preset_utils

    return name in preset_utils.BUILTIN_PRESETS


def hub_id_of(name: str) -> str:
    """The Hub id of --bert_model: `hf://OWNER/NAME` (keras-hub's spelling) is OWNER/NAME."""
    return name[len(HF_SCHEME):] if name.startswith(HF_SCHEME) else name


def is_hub_id(name: str) -> bool:
    """Whether --bert_model names a Hub repository (owner/name) rather than a local path: one slash, not
    starting like a path, and nothing at that path."""
    name = hub_id_of(name)
    return not os.path.exists(name) and not name.startswith((".", "/", "~")) and bool(HUB_ID.match(name))


def cache_dir() -> str:
    """The Hub cache folder huggingface_hub uses (HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub)."""
    from huggingface_hub import constants

    return constants.HF_HUB_CACHE


def download_command(repo_id: str, revision: Optional[str]) -> str:
    """The command that fills the cache on a machine with internet."""
    pin = f" --revision {revision}" if revision else ""
    return f"HF_HUB_CACHE={cache_dir()} hf download {repo_id}{pin}"


def check_hub_id(repo_id: str) -> None:
    """InputError for an id huggingface_hub would refuse (characters, length, '--' or '..')."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as e:
        reason = str(e).strip().splitlines()[0]
        raise InputError(f"--bert_model={repo_id}: not a local path and not a valid Hugging Face Hub id "
                         f"(owner/name): {reason}") from None


def _cached_snapshot(repo_id: str, revision: Optional[str]) -> Optional[str]:
    """The cached snapshot folder of (id, revision) holding a config and weights, or None."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        path = snapshot_download(repo_id, revision=revision, local_files_only=True,
                                 allow_patterns=_downloaded_patterns(repo_id, revision))
    except (LocalEntryNotFoundError, FileNotFoundError, OSError):
        return None
    names = set(os.listdir(path)) if os.path.isdir(path) else set()
    has_config = bool(names & {"config.json", "bert_config.json"})
    has_weights = any(any(re.fullmatch(p.replace(".", r"\.").replace("*", ".*"), n) for n in names for p in choice)
                      for choice in WEIGHT_CHOICES)
    return path if has_config and has_weights else None


def _downloaded_patterns(repo_id: str, revision: Optional[str]) -> Optional[List[str]]:
    """The files _download fetches for (id, revision), chosen from the file list huggingface_hub (2.4 and later)
    cached with the snapshot, so that its completeness check asks for those alone; None without that list."""
    try:
        from huggingface_hub import get_cached_repo_tree
        from huggingface_hub.errors import CachedRepoTreeNotFoundError
    except ImportError:  # an older huggingface_hub keeps no file list (and checks nothing against one)
        return None
    try:
        files = [entry.path for entry in get_cached_repo_tree(repo_id, revision=revision)]
        return [*SIDE_FILES, *_weight_patterns(files)]
    except (CachedRepoTreeNotFoundError, InputError, OSError):
        return None


def _ready_marker(repo_id: str, revision: Optional[str]) -> str:
    return os.path.join(cache_dir(), READY_DIR, f"{repo_id.replace('/', '--')}@{revision or 'main'}")


def _weight_patterns(files: Sequence[str]) -> List[str]:
    """The weight files to download: the first format of WEIGHT_CHOICES the repository holds."""
    for choice in WEIGHT_CHOICES:
        if choice[0] in files:
            return list(choice)
    raise InputError("no BERT weights in this repository (model.safetensors, tf_model.h5 or pytorch_model.bin)")


def _hub_error(repo_id: str, revision: Optional[str], error: Exception) -> InputError:
    """One line for what the Hub answered (or that it could not be reached)."""
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError, RevisionNotFoundError

    if isinstance(error, RevisionNotFoundError):
        return InputError(f"--revision={revision}: no such revision of {repo_id} on the Hugging Face Hub")
    if isinstance(error, GatedRepoError):
        return InputError(f"--bert_model={repo_id}: a gated repository; accept its terms on the Hub and log in "
                          "(hf auth login), or download it where you can and copy the cache")
    if isinstance(error, RepositoryNotFoundError):
        return InputError(f"--bert_model={repo_id}: not a local path, and no such model on the Hugging Face Hub")
    return not_cached_error(repo_id, revision, f"the Hub cannot be reached ({type(error).__name__})")


def not_cached_error(repo_id: str, revision: Optional[str], why: str) -> InputError:
    """The error for an id that is neither cached nor downloadable: the id, the cache, the download command."""
    at = f" at revision {revision}" if revision else ""
    return InputError(f"--bert_model={repo_id}{at}: not a local path and not in the Hugging Face cache "
                      f"{cache_dir()}, and {why}; on a machine with internet run `{download_command(repo_id, revision)}` "
                      "and copy that cache here (or set HF_HUB_CACHE to it)")


def _download(repo_id: str, revision: Optional[str]) -> str:
    """Download the files a BERT needs into the cache; the snapshot folder."""
    from huggingface_hub import HfApi, snapshot_download

    try:
        info = HfApi().model_info(repo_id, revision=revision)  # one request (no retries): is the Hub there?
        files = [sibling.rfilename for sibling in info.siblings or []]
        return snapshot_download(repo_id, revision=revision,
                                 allow_patterns=[*SIDE_FILES, *_weight_patterns(files)])
    except InputError as e:
        raise InputError(f"--bert_model={repo_id}: {e.problem}") from None
    except Exception as e:  # huggingface_hub / requests / httpx raise many kinds; each becomes one line
        raise _hub_error(repo_id, revision, e) from None


def _wait_for_chief(repo_id: str, revision: Optional[str], timeout: float, sleep: Callable[[float], None]) -> str:
    """A non-chief worker: wait until the chief's marker says the snapshot is complete; its folder."""
    marker = _ready_marker(repo_id, revision)
    waited = 0.0
    while not os.path.isfile(marker):
        if waited >= timeout:
            raise not_cached_error(repo_id, revision, f"the chief worker did not download it within {timeout:.0f} s "
                                   "(the workers need one shared cache, or a cache filled beforehand)")
        sleep(5.0)
        waited += 5.0
    found = _cached_snapshot(repo_id, revision)
    if found is None:
        raise not_cached_error(repo_id, revision, "the chief's download is not in this worker's cache")
    return found


def resolve_hub_model(repo_id: str, revision: Optional[str] = None, chief: bool = True,
                      timeout: float = WAIT_SECONDS, sleep: Callable[[float], None] = time.sleep) -> HubModel:
    """The local snapshot of a Hub id: cached, else downloaded by the chief (the other workers wait for it)."""
    from huggingface_hub import constants

    check_hub_id(repo_id)
    path = _cached_snapshot(repo_id, revision)
    if path is None and constants.HF_HUB_OFFLINE:
        raise not_cached_error(repo_id, revision, "HF_HUB_OFFLINE is set")
    if path is None and not chief:
        path = _wait_for_chief(repo_id, revision, timeout, sleep)
    if path is None:
        path = _download(repo_id, revision)
        marker = _ready_marker(repo_id, revision)
        os.makedirs(os.path.dirname(marker), exist_ok=True)
        write_text_atomic(marker, os.path.basename(os.path.normpath(path)) + "\n")
    return HubModel(repo_id, revision, os.path.basename(os.path.normpath(path)), path)


def resolve_preset(handle: str) -> str:
    """The local folder of a keras-hub preset handle, fetched by keras-hub's own loader into its cache."""
    from keras_hub.src.utils import preset_utils

    try:
        config = preset_utils.get_file(handle, preset_utils.CONFIG_FILE)
    except Exception as e:  # keras-hub / kagglehub raise many kinds; each becomes one line
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise InputError(f"--bert_model={handle}: keras-hub could not load this preset ({type(e).__name__}: "
                         f"{first})") from None
    return os.path.dirname(config)
