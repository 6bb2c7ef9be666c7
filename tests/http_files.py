"""A file server on 127.0.0.1 for the download tests: serves a folder with HTTP Range support, and can misbehave on
purpose: ``cut`` paths send half their bytes and drop the connection (once), ``stall`` paths send half and then
hang until the server stops, ``corrupt`` paths serve other bytes, ``delay`` slows every response."""

from __future__ import annotations

import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class Files:
    def __init__(self, root: Path, prefix: str = ""):
        self.root, self.prefix = Path(root), prefix.strip("/")
        self.cut: set[str] = set()
        self.stall: set[str] = set()
        self.corrupt: set[str] = set()
        self.delay = 0.0
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        self._stop = threading.Event()
        files = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):  # noqa: N802 - http.server's name
                files.requests.append((self.path, self.headers.get("Range")))
                rel = self.path.lstrip("/").removeprefix(files.prefix).lstrip("/")
                path = files.root / rel
                if not path.is_file():
                    self.send_error(404)
                    return
                data = path.read_bytes()
                if rel in files.corrupt:
                    data = bytes(b ^ 0xFF for b in data[:64]) + data[64:]
                start = 0
                match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
                if match:
                    start = int(match[1])
                    if start >= len(data):
                        self.send_response(416)
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                time.sleep(files.delay)
                if rel in files.cut or rel in files.stall:
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    if rel in files.stall:
                        files._stop.wait()
                    files.cut.discard(rel)
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/{self.prefix}".rstrip("/")

    def __enter__(self) -> Files:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self.server.shutdown()
        self.server.server_close()
