#!/usr/bin/env python3
"""A stand-in for the Hugging Face Hub on 127.0.0.1, for the specs.

Python's standard library only (Debian 12's python3, which the specs
already need): no package to install, threads and sendfile included.

It speaks the parts of the Hub's HTTP protocol that huggingface_hub and
@huggingface/hub use to download (checked with the official npm client,
tests/hub/client.mjs):
  GET  /api/models/{repo}/revision/{rev}[?blobs=true]   model info, siblings
  GET  /api/models/{repo}/tree/{rev}[/{path}]            file list
  POST /api/models/{repo}/paths-info/{rev}               file metadata
  HEAD|GET /{repo}/resolve/{rev}/{file}                  X-Repo-Commit, ETag,
       X-Linked-Etag / X-Linked-Size and a 302 to the storage port for LFS
       files, the bytes themselves for small git files; Range supported
  GET  /lfs/{sha256} on a second port                    the LFS storage host
Errors carry X-Error-Code (RepoNotFound, GatedRepo, EntryNotFound,
RevisionNotFound) as the Hub's do.

Faults and the request log are driven through the hub port:
  POST /_control/faults  [{"kind": "cut"|"500"|"stall", "match": "substring
                          of the path", "times": n, "at": bytes, "seconds": s}]
                          (cut: close after byte `at`; stall: send up to `at`,
                          then nothing for `seconds`)
  GET  /_control/log     every request seen: server, method, path, range, auth
  POST /_control/reset   clears faults and the log

Usage: standin_hub.py CONFIG.json; prints {"hub": port, "storage": port}.
CONFIG: {"token": "hf_...", "repos": {"org/name": {"files": {"path": "/file"},
         "gated": bool, "corrupt": ["path"]}}}
"""
import hashlib
import json
import os
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

LFS_SUFFIXES = (".gguf", ".safetensors", ".bin", ".pt", ".pth", ".onnx", ".png", ".h5", ".msgpack")


class Repo:
    def __init__(self, name, spec):
        self.name = name
        self.gated = bool(spec.get("gated"))
        self.corrupt = set(spec.get("corrupt", []))
        self.files = {}
        for path, src in sorted(spec["files"].items()):
            size = os.path.getsize(src)
            lfs = path.endswith(LFS_SUFFIXES) or size >= 10 << 20
            with open(src, "rb") as f:
                sha256, sha1 = hashlib.sha256(), hashlib.sha1(b"blob %d\0" % size)
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    sha256.update(chunk)
                    if not lfs:
                        sha1.update(chunk)
            pointer = ("version https://git-lfs.github.com/spec/v1\noid sha256:%s\nsize %d\n"
                       % (sha256.hexdigest(), size)).encode()
            oid = hashlib.sha1(b"blob %d\0" % len(pointer) + pointer).hexdigest() if lfs else sha1.hexdigest()
            self.files[path] = {"src": src, "size": size, "lfs": lfs, "sha256": sha256.hexdigest(),
                                "oid": oid, "pointer_size": len(pointer)}
        h = hashlib.sha1(name.encode())
        for path, f in self.files.items():
            h.update(("%s %s\n" % (path, f["oid"])).encode())
        self.commit = h.hexdigest()

    def entry(self, path, expand=False):
        f = self.files[path]
        e = {"type": "file", "oid": f["oid"], "size": f["size"], "path": path}
        if f["lfs"]:
            e["lfs"] = {"oid": f["sha256"], "size": f["size"], "pointerSize": f["pointer_size"]}
        if expand:
            e["lastCommit"] = {"id": self.commit, "title": "upload", "date": "2025-01-01T00:00:00.000Z"}
        return e


class State:
    def __init__(self, config):
        self.token = config.get("token")
        self.repos = {name: Repo(name, spec) for name, spec in config["repos"].items()}
        self.lock = threading.Lock()
        self.faults = []
        self.log = []
        self.storage_port = None

    def take_fault(self, path):
        with self.lock:
            for f in self.faults:
                if f.get("times", 1) > 0 and f.get("match", "") in path:
                    f["times"] = f.get("times", 1) - 1
                    return dict(f)
        return None


def make_handler(state, server_name):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # quiet: the log is served at /_control/log
            pass

        def record(self):
            if self.path.startswith("/_control/"):
                return
            with state.lock:
                state.log.append({"server": server_name, "method": self.command, "path": self.path,
                                  "range": self.headers.get("Range"),
                                  "auth": self.headers.get("Authorization") is not None})

        def send(self, status, body=b"", headers=None, ctype="application/json"):
            self.send_response(status)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def send_json(self, value, headers=None):
            self.send(200, json.dumps(value).encode(), headers)

        def error(self, status, code, message):
            self.send(status, json.dumps({"error": message}).encode(),
                      {"X-Error-Code": code, "X-Error-Message": message})

        def authorized(self):
            return state.token is not None and self.headers.get("Authorization") == "Bearer " + state.token

        # the repo (with access checked) or None after an error reply
        def repo(self, name, rev):
            repo = state.repos.get(name)
            if repo is None:
                if self.authorized():
                    self.error(404, "RepoNotFound", "Repository Not Found for url: %s." % self.path)
                else:  # the Hub does not tell a missing repo from a private one
                    self.error(401, "RepoNotFound", "Repository Not Found for url: %s. Please make sure you "
                               "specified the correct `repo_id` and `repo_type`. If you are trying to access a "
                               "private or gated repo, make sure you are authenticated." % self.path)
                return None
            if repo.gated and not self.authorized():
                self.error(401, "GatedRepo", "Access to model %s is restricted. You must have access to it "
                           "and be authenticated to access it. Please log in." % name)
                return None
            if rev not in ("main", repo.commit):
                self.error(404, "RevisionNotFound", "Invalid rev id: %s" % rev)
                return None
            return repo

        # sends src's bytes (Range honoured), applying a fault if one matches
        def send_file(self, src, size, headers, corrupt=False):
            start, end, status = 0, size - 1, 200
            m = re.match(r"bytes=(\d+)-(\d*)$", self.headers.get("Range") or "")
            if m:
                start = int(m.group(1))
                end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
                if start >= size:
                    self.send(416, b"", dict(headers, **{"Content-Range": "bytes */%d" % size}))
                    return
                status = 206
                headers = dict(headers, **{"Content-Range": "bytes %d-%d/%d" % (start, end, size)})
            fault = state.take_fault(self.path) if self.command == "GET" else None
            if fault and fault["kind"] == "500":
                self.send(500, b'{"error": "Internal Error"}')
                return
            count = end - start + 1
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(count))
            self.end_headers()
            if self.command == "HEAD":
                return
            limit = count
            if fault and fault["kind"] in ("cut", "stall"):
                limit = max(0, min(count, fault.get("at", 0 if fault["kind"] == "stall" else count // 2) - start))
            with open(src, "rb") as f:
                if corrupt:
                    data = bytearray(f.read())[start:start + limit]
                    if data:
                        data[len(data) // 2] ^= 0xFF
                    self.wfile.write(bytes(data))
                elif limit > 0:
                    self.connection.sendfile(f, start, limit)
            if fault and fault["kind"] == "stall":  # then nothing more for a long time
                self.wfile.flush()
                time.sleep(fault.get("seconds", 3600))
            if limit < count:  # the cut: close without the rest
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(2)

        def do_HEAD(self):
            self.do_GET()

        def do_GET(self):
            self.record()
            url = urlsplit(self.path)
            path = unquote(url.path)
            if server_name == "storage":
                m = re.match(r"/lfs/([0-9a-f]{64})$", path)
                q = parse_qs(url.query)
                repo = state.repos.get(q.get("repo", [""])[0])
                f = repo and repo.files.get(q.get("file", [""])[0])
                if not m or not f or f["sha256"] != m.group(1):
                    return self.send(404, b'{"error": "no such object"}')
                corrupt = q.get("file", [""])[0] in repo.corrupt
                return self.send_file(f["src"], f["size"], {"ETag": '"%s"' % f["sha256"]}, corrupt)
            if path == "/_control/log":
                with state.lock:
                    return self.send_json(state.log)
            m = re.match(r"/api/models/([^/]+/[^/]+)/revision/([^/]+)$", path)
            if m:
                repo = self.repo(m.group(1), m.group(2))
                if repo is None:
                    return
                blobs = parse_qs(url.query).get("blobs") == ["true"]
                siblings = []
                for p, f in repo.files.items():
                    s = {"rfilename": p}
                    if blobs:
                        s.update({"size": f["size"], "blobId": f["oid"]})
                        if f["lfs"]:
                            s["lfs"] = {"sha256": f["sha256"], "size": f["size"], "pointerSize": f["pointer_size"]}
                    siblings.append(s)
                return self.send_json({"_id": repo.commit[:24], "id": repo.name, "modelId": repo.name,
                                       "sha": repo.commit, "private": False, "gated": "auto" if repo.gated else False,
                                       "disabled": False, "downloads": 0, "likes": 0, "tags": ["gguf"],
                                       "lastModified": "2025-01-01T00:00:00.000Z", "siblings": siblings})
            m = re.match(r"/api/models/([^/]+/[^/]+)/tree/([^/]+)(/.*)?$", path)
            if m:
                repo = self.repo(m.group(1), m.group(2))
                if repo is None:
                    return
                prefix = (m.group(3) or "/").lstrip("/")
                recursive = parse_qs(url.query).get("recursive") == ["true"]
                items, dirs = [], set()
                for p in repo.files:
                    if prefix and not p.startswith(prefix.rstrip("/") + "/"):
                        continue
                    rest = p[len(prefix.rstrip("/")) + 1:] if prefix else p
                    if "/" in rest and not recursive:
                        d = (prefix.rstrip("/") + "/" if prefix else "") + rest.split("/")[0]
                        if d not in dirs:
                            dirs.add(d)
                            items.append({"type": "directory", "oid": "0" * 40, "size": 0, "path": d})
                        continue
                    items.append(repo.entry(p))
                return self.send_json(items)
            m = re.match(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$", path)
            if m:
                repo = self.repo(m.group(1), m.group(2))
                if repo is None:
                    return
                f = repo.files.get(m.group(3))
                if f is None:
                    return self.error(404, "EntryNotFound", "Entry not found")
                headers = {"X-Repo-Commit": repo.commit, "ETag": '"%s"' % f["oid"]}
                if f["lfs"]:
                    location = "http://127.0.0.1:%d/lfs/%s?repo=%s&file=%s" % (
                        state.storage_port, f["sha256"], repo.name, m.group(3))
                    headers.update({"X-Linked-Etag": '"%s"' % f["sha256"], "X-Linked-Size": str(f["size"]),
                                    "Location": location})
                    return self.send(302, b"", headers, "text/plain")
                return self.send_file(f["src"], f["size"], headers)
            self.send(404, b'{"error": "Sorry, we can\'t find the page you are looking for."}')

        def do_POST(self):
            self.record()
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            path = unquote(urlsplit(self.path).path)
            if server_name == "hub" and path == "/_control/faults":
                with state.lock:
                    state.faults = json.loads(body)
                return self.send_json({"ok": True})
            if server_name == "hub" and path == "/_control/reset":
                with state.lock:
                    state.faults, state.log = [], []
                return self.send_json({"ok": True})
            m = re.match(r"/api/models/([^/]+/[^/]+)/paths-info/([^/]+)$", path)
            if server_name == "hub" and m:
                repo = self.repo(m.group(1), m.group(2))
                if repo is None:
                    return
                if (self.headers.get("Content-Type") or "").startswith("application/json"):
                    req = json.loads(body or b"{}")
                    paths, expand = req.get("paths", []), bool(req.get("expand"))
                else:
                    form = parse_qs(body.decode())
                    paths, expand = form.get("paths", []), form.get("expand") == ["true"]
                return self.send_json([repo.entry(p, expand) for p in paths if p in repo.files])
            self.send(404, b'{"error": "not found"}')

    return Handler


def main():
    with open(sys.argv[1]) as f:
        state = State(json.load(f))
    hub = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(state, "hub"))
    storage = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(state, "storage"))
    hub.daemon_threads = storage.daemon_threads = True
    state.storage_port = storage.server_address[1]
    threading.Thread(target=storage.serve_forever, daemon=True).start()
    print(json.dumps({"hub": hub.server_address[1], "storage": state.storage_port}), flush=True)
    hub.serve_forever()


if __name__ == "__main__":
    main()
