"""Download a data set into a folder, file by file, checked against its sha256 list: ``ablate data fetch``.

- Each file goes to ``<name>.part`` first and takes its own name only once its sha256 matches, so a file under its
  own name is always complete; an interrupted run leaves ``.part`` files that the next run continues with an HTTP
  Range request (a server that ignores the range sends the whole file again).
- Files already there are hashed again on every run: a corrupted one is named and downloaded anew.
- At the end every listed file must be there and match: the counts per folder are the data set's.

Torch-free (stdlib ``urllib``; ``rich`` draws the progress bar).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

CHUNK = 1 << 16
RETRIES = 3


@dataclass(frozen=True)
class Download:
    """Where a data set's files come from: ``base_url``/<path> for every (sha256, path) line of ``checksums``; the
    environment variable ``url_env`` replaces the base URL (a mirror, or a local server in tests)."""

    base_url: str
    checksums: Path
    url_env: str
    source: str = ""  # what the files are, for the command's first line

    def files(self) -> list[tuple[str, str]]:
        """(path, sha256) of every file, in the order of the list."""
        pairs = []
        for line in self.checksums.read_text().splitlines():
            if line.strip():
                digest, path = line.split(maxsplit=1)
                pairs.append((path.strip(), digest))
        return pairs

    def url(self) -> str:
        return (os.environ.get(self.url_env) or self.base_url).rstrip("/")


class FetchError(Exception):
    """A download that could not finish (network, or a file whose bytes do not match): one line, naming the file."""


@dataclass
class FetchReport:
    present: int = 0  # already there and matching
    downloaded: int = 0
    resumed: int = 0  # continued from a .part file
    corrupt: list[str] = field(default_factory=list)  # found under their own name with other bytes, fetched again
    counts: dict[str, int] = field(default_factory=dict)  # files per top folder, once everything matches


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _download(url: str, part: Path, timeout: float) -> bool:
    """Append ``url``'s bytes from ``part``'s size on (a Range request); True when it resumed a partial file."""
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 - http(s) URLs of the list
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # the range starts at the end: the .part file is the whole file
            return True
        raise
    with response:
        resumed = have > 0 and response.status == 206
        with open(part, "ab" if resumed else "wb") as fh:
            while block := response.read(CHUNK):
                fh.write(block)
        if response.length:  # the connection closed before Content-Length bytes came (http.client says nothing)
            raise http.client.IncompleteRead(b"", response.length)
    return resumed


def fetch_file(base: str, rel: str, digest: str, dest: Path, timeout: float = 60.0) -> str:
    """Download one file to ``dest/rel`` (through ``rel.part``) and check it: 'resumed' or 'downloaded'.
    Raises ``FetchError`` naming the file."""
    target = dest / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    url = f"{base}/{rel}"
    resumed = False
    for attempt in range(RETRIES):
        try:
            resumed = _download(url, part, timeout) or resumed
            break
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            if attempt == RETRIES - 1:
                reason = getattr(exc, "reason", exc)
                raise FetchError(f"{rel}: could not download {url}: {reason}") from None
            time.sleep(0.5 * 2**attempt)  # the .part file keeps what arrived; the next try continues it
    got = sha256_of(part)
    if got != digest:
        part.unlink(missing_ok=True)
        raise FetchError(f"{rel}: downloaded bytes do not match the checksum (sha256 {got[:12]}…, expected "
                         f"{digest[:12]}…); the file was removed: run the command again")  # fmt: skip
    os.replace(part, target)
    return "resumed" if resumed else "downloaded"


def fetch(download: Download, dest: Path, workers: int = 8,
          progress: Callable[[str, str], None] | None = None) -> FetchReport:  # fmt: skip
    """Make ``dest`` hold every file of ``download``, matching its checksum (see the module doc). ``progress`` is
    called with (path, outcome) per file. Raises ``FetchError`` (the first failure; the other files finish)."""
    dest.mkdir(parents=True, exist_ok=True)
    report, todo = FetchReport(), []
    for rel, digest in download.files():
        path = dest / rel
        if path.is_file():
            if sha256_of(path) == digest:
                report.present += 1
                if progress:
                    progress(rel, "present")
                continue
            report.corrupt.append(rel)
            path.unlink()
            if progress:
                progress(rel, "corrupt")
        todo.append((rel, digest))
    failures: list[str] = []
    base = download.url()
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        jobs = {pool.submit(fetch_file, base, rel, digest, dest): rel for rel, digest in todo}
        for job in as_completed(jobs):
            try:
                outcome = job.result()
            except FetchError as exc:
                failures.append(str(exc))
                outcome = "failed"
            else:
                report.downloaded += 1
                report.resumed += outcome == "resumed"
            if progress:
                progress(jobs[job], outcome)
    if failures:
        more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
        raise FetchError(failures[0] + more)
    report.counts = dict(Counter(rel.split("/")[0] for rel, _ in download.files()))
    return report
