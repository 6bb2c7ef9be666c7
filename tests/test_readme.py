"""README.md quotes committed results and the registries; the quotes must equal what they quote."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text()
QUOTE = re.compile(r"<!-- quote (\S+): (.+?) -->\n(.*?)\n<!-- end quote -->", re.S)


def _block_after(text: str, marker: str) -> str:
    """The first block (lines up to a blank line) after the line that starts with ``marker``."""
    after = text[text.index(marker) :].split("\n\n")
    return after[1].strip()


def test_readme_quotes_equal_the_committed_files():
    quotes = QUOTE.findall(README)
    assert quotes, "README quotes no results"
    for path, marker, block in quotes:
        assert (REPO / path).is_file(), path
        assert block.strip() == _block_after((REPO / path).read_text(), marker), path


def test_readme_registry_lists_equal_the_commands():
    blocks = re.findall(r"<!-- ablate (\w+) --markdown -->\n(.*?)\n<!-- end of ablate \1 -->", README, re.S)
    assert {kind for kind, _ in blocks} >= {"heads"}
    for kind, block in blocks:
        out = subprocess.run([sys.executable, "-m", "ablate.cli", kind, "--markdown"], capture_output=True,
                             text=True, cwd=REPO, check=True).stdout  # fmt: skip
        begin, end = f"<!-- ablate {kind} --markdown -->", f"<!-- end of ablate {kind} -->"
        assert f"{begin}\n{block.strip()}\n{end}" == out.strip(), kind
