"""Each benchmark owns one ``## TITLE`` section of a shared Markdown report and rewrites only that."""

from __future__ import annotations

import re
from pathlib import Path

TITLE = "# autoaug benchmarks"


def write_section(path: Path, title: str, body: str) -> None:
    """Replace the ``## {title}`` section of ``path`` (up to the next ``## ``) with ``body``, or append it."""
    text = path.read_text() if path.exists() else f"{TITLE}\n"
    section = f"## {title}\n\n{body.strip()}\n\n"
    pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    text = pattern.sub(lambda _: section, text, count=1) if pattern.search(text) else text.rstrip() + "\n\n" + section
    path.write_text(text.rstrip() + "\n")
    print(f"wrote section {title!r} of {path}")
