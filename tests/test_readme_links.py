"""The pages that grue's own output points to are linked from the README where a reader looks for them."""

from __future__ import annotations

import re

from conftest import REPO


def section(title: str) -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    start = text.index(f"\n### {title}\n")
    return text[start : text.index("\n#", start + 1)]


def test_the_scaffold_s_doc_is_linked_from_your_own_task():
    skeleton = (REPO / "grue" / "tasks" / "skeleton.py").read_text(encoding="utf-8")
    pages = sorted(set(re.findall(r"docs/[\w-]+\.md", skeleton)))
    assert pages == ["docs/extending.md"]  # what `grue new-task` writes into task.yaml
    links = re.findall(r"\]\((docs/[\w-]+\.md)\)", section("Your own task"))
    for page in pages:
        assert page in links and (REPO / page).is_file(), (page, links)
