"""A stand-in for the Hugging Face Hub on 127.0.0.1 (HF_ENDPOINT=<server.url>): one model repository at one
commit, its files read from a local folder, answering only what huggingface_hub 2.x calls to resolve and
download a snapshot (read from its source: HfApi.model_info/repo_info, list_repo_tree, get_hf_file_metadata,
hf_hub_download):

    GET  /api/models/{id}[/revision/{rev}]   model info: the commit (`sha`) and the files (`siblings`)
    GET  /api/models/{id}/tree/{rev}         the file list (path, size, git blob id) of the snapshot
    HEAD /{id}/resolve/{rev}/{file}          X-Repo-Commit, ETag and Content-Length of a file
    GET  /{id}/resolve/{rev}/{file}          the file

`rev` is `main` or the commit. Another repository answers 404 with X-Error-Code RepoNotFound, another revision
RevisionNotFound, another file EntryNotFound: the codes huggingface_hub turns into its errors. Every request is
kept in `requests` as (method, path).
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import re
import threading
from typing import Dict, List, Optional, Sequence, Tuple
from urllib.parse import unquote, urlsplit

API = re.compile(r"^/api/models/(?P<id>[^/]+/[^/]+)(?:/revision/(?P<rev>[^/]+)|/tree/(?P<tree>[^/]+))?/?$")
RESOLVE = re.compile(r"^/(?P<id>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<file>.+)$")


def git_blob_id(data: bytes) -> str:
    """The git blob hash of `data` (what the Hub gives as a small file's oid and ETag)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class HubServer:
    """Serve `files` (names in `folder`) as the repository `repo_id` at `commit` on 127.0.0.1 (a free port)."""

    def __init__(self, repo_id: str, commit: str, folder: str, files: Sequence[str]) -> None:
        self.repo_id, self.commit = repo_id, commit
        self.paths = {name: os.path.join(folder, name) for name in files}
        self.blob_ids = {name: git_blob_id(read_bytes(path)) for name, path in self.paths.items()}
        self.requests: List[Tuple[str, str]] = []
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self) -> "HubServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()

    def answer(self, method: str, target: str) -> Tuple[int, Dict[str, str], bytes]:
        """Status, headers and body for a request (the body is dropped for HEAD by the handler)."""
        path = unquote(urlsplit(target).path)
        self.requests.append((method, path))
        api, resolve = API.match(path), RESOLVE.match(path)
        match = api or resolve
        if match is None or match["id"] != self.repo_id:
            return error(404, "RepoNotFound", "Repository not found")
        revision = (api and (api["rev"] or api["tree"] or "main")) or resolve["rev"]
        if revision not in ("main", self.commit):
            return error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        if api and api["tree"]:
            return json_answer([{"type": "file", "path": name, "size": os.path.getsize(path),
                                 "oid": self.blob_ids[name]} for name, path in sorted(self.paths.items())])
        if api:
            return json_answer({"id": self.repo_id, "modelId": self.repo_id, "sha": self.commit, "private": False,
                                "siblings": [{"rfilename": name} for name in sorted(self.paths)]})
        return self.file_answer(resolve["file"])

    def file_answer(self, name: str) -> Tuple[int, Dict[str, str], bytes]:
        """A file of the snapshot with the headers hf_hub_download reads, or EntryNotFound."""
        if name not in self.paths:
            return error(404, "EntryNotFound", f"{name} does not exist", {"X-Repo-Commit": self.commit})
        data = read_bytes(self.paths[name])
        return 200, {"X-Repo-Commit": self.commit, "ETag": f'"{self.blob_ids[name]}"',
                     "Content-Type": "application/octet-stream"}, data

    def _handler_class(self) -> type:
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def reply(self, with_body: bool) -> None:
                status, headers, body = server.answer(self.command, self.path)
                self.send_response(status)
                for key, value in {**headers, "Content-Length": str(len(body))}.items():
                    self.send_header(key, value)
                self.end_headers()
                if with_body:
                    self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                self.reply(True)

            def do_HEAD(self) -> None:  # noqa: N802
                self.reply(False)

            def log_message(self, *args) -> None:  # quiet: requests are kept in server.requests
                pass

        return Handler


def read_bytes(path: str) -> bytes:
    """The contents of a file."""
    with open(path, "rb") as f:
        return f.read()


def json_answer(value: object) -> Tuple[int, Dict[str, str], bytes]:
    """A 200 JSON answer."""
    return 200, {"Content-Type": "application/json"}, json.dumps(value).encode("utf-8")


def error(status: int, code: str, message: str,
          extra: Optional[Dict[str, str]] = None) -> Tuple[int, Dict[str, str], bytes]:
    """An error answer as the Hub gives it: X-Error-Code and X-Error-Message headers, a JSON body."""
    headers = {"X-Error-Code": code, "X-Error-Message": message, "Content-Type": "application/json",
               **(extra or {})}
    return status, headers, json.dumps({"error": message}).encode("utf-8")
