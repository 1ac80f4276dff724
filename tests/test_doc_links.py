"""Every relative link in the project's Markdown reaches a file, and its #anchor a heading there."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.processes import REPO_ROOT

DOCUMENTS = sorted([*REPO_ROOT.glob("*.md"), *(REPO_ROOT / "docs").glob("*.md")])
_LINK = re.compile(r"\]\(([^)\s]+)\)")
_FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)


def anchors(document: Path) -> set[str]:
    """The ids GitHub gives the document's headings: lower case, punctuation dropped, spaces
    to hyphens."""
    text = _FENCE.sub("", document.read_text())
    headings = re.findall(r"^#+\s+(.+?)\s*$", text, re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: path.name)
def test_every_relative_link_reaches_its_file_and_heading(document):
    broken = []
    for target in _LINK.findall(_FENCE.sub("", document.read_text())):
        if re.match(r"[a-z]+:", target):  # https:, mailto: — not checked offline
            continue
        path, _, anchor = target.partition("#")
        linked = (document.parent / path).resolve() if path else document
        reached = linked.exists() and (
            not anchor or (linked.suffix == ".md" and anchor in anchors(linked))
        )
        if not reached:
            broken.append(target)
    assert broken == []
