"""docs/performance.md, where each benchmark keeps its own section between two markers and
`--write-docs` replaces only that section (or appends it the first time)."""

from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs" / "performance.md"


def write_section(section: str, start: str, end: str) -> None:
    """Replace what lies between `start` and `end` (both included in `section`) in the doc."""
    text = DOCS.read_text() if DOCS.exists() else "# Performance\n"
    if start in text:
        before, rest = text.split(start, 1)
        text = before + section + rest.split(end, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    DOCS.write_text(text)
