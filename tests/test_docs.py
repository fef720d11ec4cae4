"""The README and docs/: every relative link and anchor resolves, and the README stays short."""

import re
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens (a `#` line inside a
    fenced code block is a comment, not a heading)."""
    out = set()
    fenced = False
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif line.startswith("#") and not fenced:
            title = line.lstrip("#").strip().lower()
            out.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return out


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_resolve(page):
    broken = []
    for target in LINK.findall(page.read_text(encoding="utf-8")):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(f"{target}: no file {file}")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            broken.append(f"{target}: no heading #{anchor} in {file.name}")
    assert not broken, f"{page.name}: " + "; ".join(broken)


def test_readme_is_a_front_page():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) < 200, f"README.md has {len(lines)} lines; move detail to docs/"


RUNNABLE = "<!-- runs in tests/test_docs.py -->"


def runnable_blocks(page: Path) -> list[str]:
    """The Python blocks a page marks as runnable: the line before their fence is RUNNABLE."""
    lines = page.read_text(encoding="utf-8").splitlines()
    blocks = []
    for i, line in enumerate(lines):
        if line.strip() == RUNNABLE:
            assert lines[i + 1] == "```python", f"{page.name}:{i + 2}: expected a python block after the marker"
            end = lines.index("```", i + 2)
            blocks.append("\n".join(lines[i + 2 : end]))
    return blocks


def test_a_heading_inside_a_code_block_is_no_anchor(tmp_path):
    page = tmp_path / "p.md"
    page.write_text("# Real\n\n```bash\n# install it\n```\n", encoding="utf-8")
    assert anchors(page) == {"real"}


def test_the_runnable_python_examples_run(tmp_path, monkeypatch):
    """The docs' marked examples, run as a reader would, from a directory with the project's configs."""
    blocks = [b for page in PAGES for b in runnable_blocks(page)]
    assert blocks, f"no block marked {RUNNABLE}"
    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    monkeypatch.chdir(tmp_path)
    for block in blocks:
        exec(compile(block, "<docs example>", "exec"), {})
