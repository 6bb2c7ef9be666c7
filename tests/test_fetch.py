"""``ablate data fetch``: downloads checked against their sha256, resumed after an interruption, corrupted files
named, never a half-written file under its own name; against a file server on 127.0.0.1 that serves a copy of
../shared/data/camvid (links, no copies)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from http_files import Files

from ablate.data.camvid import DOWNLOAD
from ablate.data.fetch import Download, FetchError, fetch

CAMVID = Path(__file__).resolve().parents[2] / "shared" / "data" / "camvid"
needs_camvid = pytest.mark.skipif(not (CAMVID / "SHA256SUMS").is_file(), reason="../shared/data/camvid is not here")


def mirror(tmp_path: Path, files: list[str]) -> Path:
    """A server folder holding ``files`` of CamVid as symbolic links, under the repository's own path layout."""
    root = tmp_path / "server"
    for rel in files:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).symlink_to(CAMVID / rel)
    return root


def subset(tmp_path: Path, count: int) -> tuple[Download, list[str]]:
    """The first ``count`` files of each CamVid folder as a download of their own."""
    per_folder: dict[str, list[str]] = {}
    for line in DOWNLOAD.checksums.read_text().splitlines():
        digest, rel = line.split()
        per_folder.setdefault(rel.split("/")[0], []).append(line)
    lines = [line for lines in per_folder.values() for line in lines[:count]]
    sums = tmp_path / "sums.txt"
    sums.write_text("\n".join(lines) + "\n")
    return Download("http://unused", sums, "ABLATE_TEST_FETCH_URL"), [line.split()[1] for line in lines]


@needs_camvid
def test_the_list_is_the_shared_copy():
    """The checksums ablate ships are those of every CamVid file: 367 / 101 / 233 pairs."""
    shipped = {rel: digest for rel, digest in DOWNLOAD.files()}
    shared = dict(reversed(line.split()) for line in (CAMVID / "SHA256SUMS").read_text().splitlines())
    assert shipped == shared
    counts = {folder: sum(r.startswith(folder + "/") for r in shipped) for folder in ("train", "val", "test")}
    assert counts == {"train": 367, "val": 101, "test": 233}
    assert all(rel.replace("/", "annot/", 1) in shipped for rel in shipped if rel.split("/")[0] in counts)


@needs_camvid
def test_fetch_verifies_resumes_and_names_corrupted_files(tmp_path, monkeypatch):
    download, files = subset(tmp_path, 2)
    with Files(mirror(tmp_path, files), "CamVid") as server:
        monkeypatch.setenv(download.url_env, server.url)
        dest = tmp_path / "camvid"
        # a dropped connection halfway through a file: the retry continues it with a Range request
        server.cut.add(files[0])
        report = fetch(download, dest, workers=2)
        assert report.downloaded == len(files) and report.resumed == 1
        assert any(rng and rng.startswith("bytes=") for path, rng in server.requests if path.endswith(files[0]))
        for rel in files:
            assert (dest / rel).read_bytes() == (CAMVID / rel).read_bytes()
        assert not list(dest.rglob("*.part"))
        assert report.counts == {"test": 2, "testannot": 2, "train": 2, "trainannot": 2, "val": 2, "valannot": 2}
        # a file damaged on disk is named and fetched again; the others are only checked
        (dest / files[3]).write_bytes(b"not a png")
        again = fetch(download, dest)
        assert again.corrupt == [files[3]] and again.downloaded == 1 and again.present == len(files) - 1
        assert (dest / files[3]).read_bytes() == (CAMVID / files[3]).read_bytes()
        # a server sending other bytes: the file is named, and nothing is left under its name
        (dest / files[5]).unlink()
        server.corrupt.add(files[5])
        with pytest.raises(FetchError, match=rf"^{files[5]}: downloaded bytes do not match the checksum"):
            fetch(download, dest)
        assert not (dest / files[5]).exists() and not list(dest.rglob("*.part"))


@needs_camvid
@pytest.mark.slow
def test_fetch_command_killed_halfway_then_resumed_gives_the_same_bytes(tmp_path):
    """The whole CamVid list through ``ablate data fetch``: killed (SIGKILL) while files are half written, run
    again, every file equals the shared copy byte for byte, and the counts are the data set's."""
    files = [rel for rel, _ in DOWNLOAD.files()]
    with Files(mirror(tmp_path, files), "CamVid") as server:
        server.stall.add("train/0001TP_006690.png")  # hangs halfway until the server stops: a .part file stays
        server.delay = 0.002
        env = {**os.environ, "ABLATE_CAMVID_URL": server.url, "COLUMNS": "100"}
        dest = tmp_path / "data" / "camvid"
        cmd = [sys.executable, "-m", "ablate.cli", "data", "fetch", "camvid", str(dest)]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while sum(1 for _ in dest.rglob("*.png")) < len(files) // 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        done = sum(1 for _ in dest.rglob("*.png"))
        assert 0 < done < len(files)
        assert (dest / "train" / "0001TP_006690.png.part").is_file()  # half a file, not under its own name
        server.stall.clear()
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert f"{done} already there" in out.stdout and "resumed" in out.stdout
    assert "train 367, trainannot 367, val 101, valannot 101, test 233, testannot 233" in out.stdout.replace(
        "\n", " "
    ) or all(f"{k} {n}" in out.stdout for k, n in (("train", 367), ("val", 101), ("test", 233)))
    for rel in files:
        assert (dest / rel).read_bytes() == (CAMVID / rel).read_bytes(), rel
    assert not list(dest.rglob("*.part"))
