"""The README stays short, and every relative link of the documentation leads somewhere."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", ROOT / "ARCHITECTURE.md", *sorted((ROOT / "docs").glob("*.md"))]

FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)  # code blocks hold no links
CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)


def prose(page: Path) -> str:
    """The page without its code blocks."""
    return FENCE.sub("", page.read_text(encoding="utf-8"))


def slug(heading: str) -> str:
    """GitHub's anchor: lowercase, punctuation dropped (but hyphens), spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    found: set[str] = set()
    for heading in HEADING.findall(prose(page)):
        base = anchor = slug(heading)
        n = 0
        while anchor in found:  # GitHub numbers repeated headings: x, x-1, x-2
            n += 1
            anchor = f"{base}-{n}"
        found.add(anchor)
    return found


def relative_links(page: Path) -> list[str]:
    targets = LINK.findall(CODE.sub("", prose(page)))
    return [t for t in targets if not re.match(r"(https?|mailto):", t, re.IGNORECASE)]


def test_relative_links_lead_to_existing_files_and_headings() -> None:
    broken = []
    for page in PAGES:
        for target in relative_links(page):
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            link = f"{page.relative_to(ROOT)}: ({target})"
            if not dest.exists():
                broken.append(f"{link} leads to no file")
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                broken.append(f"{link}: {dest.name} has no heading #{anchor}")
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_readme_is_short_and_names_the_two_commands() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    lines = len(text.splitlines())
    assert lines <= 260, f"README.md has {lines} lines; move detail into docs/ (at most 260)"
    for command in ("make run", "make test"):
        assert command in text, f"README.md does not mention `{command}`"
