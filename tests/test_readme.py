"""README.md and the pages under docs/ quote committed results and the registries; the quotes must equal what they
quote, and every relative link must lead to a file of the repository."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
QUOTE = re.compile(r"<!-- quote (\S+): (.+?) -->\n(.*?)\n<!-- end quote -->", re.S)
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _name(page: Path) -> str:
    return str(page.relative_to(REPO))


def _block_after(text: str, marker: str) -> str:
    """The first block (lines up to a blank line) after the line that starts with ``marker``."""
    after = text[text.index(marker) :].split("\n\n")
    return after[1].strip()


def test_the_results_have_pages_of_their_own():
    """README is the guide; what the studies and the bench measured is quoted on docs/results.md and docs/speed.md."""
    assert {"docs/results.md", "docs/speed.md"} <= {_name(p) for p in PAGES}
    assert QUOTE.search((REPO / "docs" / "results.md").read_text()), "docs/results.md quotes no results"
    readme = (REPO / "README.md").read_text()
    assert "](docs/results.md" in readme and "](docs/speed.md" in readme


@pytest.mark.parametrize("page", PAGES, ids=_name)
def test_quotes_equal_the_committed_files(page):
    for path, marker, block in QUOTE.findall(page.read_text()):
        assert (REPO / path).is_file(), f"{_name(page)}: {path}"
        assert block.strip() == _block_after((REPO / path).read_text(), marker), f"{_name(page)}: {path}"


@pytest.mark.parametrize("page", PAGES, ids=_name)
def test_relative_links_lead_to_files_of_the_repository(page):
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+:|#", target):
            continue
        path = (page.parent / target.split("#")[0]).resolve()
        assert path.exists() and path.is_relative_to(REPO), f"{_name(page)}: ({target}) leads nowhere"


def test_readme_registry_lists_equal_the_commands():
    readme = (REPO / "README.md").read_text()
    blocks = re.findall(r"<!-- ablate (\w+) --markdown -->\n(.*?)\n<!-- end of ablate \1 -->", readme, re.S)
    assert {kind for kind, _ in blocks} >= {"heads"}
    for kind, block in blocks:
        out = subprocess.run([sys.executable, "-m", "ablate.cli", kind, "--markdown"], capture_output=True,
                             text=True, cwd=REPO, check=True).stdout  # fmt: skip
        begin, end = f"<!-- ablate {kind} --markdown -->", f"<!-- end of ablate {kind} -->"
        assert f"{begin}\n{block.strip()}\n{end}" == out.strip(), kind
