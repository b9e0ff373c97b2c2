"""Report documents: a list of blocks rendered as Markdown or as a self-contained HTML page, and the
environment a report records."""

from __future__ import annotations

import base64
import html
import platform
import re
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from autoaug.machine import describe

Block = tuple[str, Any]  # ("h1" | "h2" | "p" | "pre", text), ("table", (header, rows)), ("img", (path, caption))


def to_markdown(blocks: Sequence[Block]) -> str:
    out = []
    for kind, value in blocks:
        if kind in ("h1", "h2", "h3"):
            out.append(f"{'#' * int(kind[1])} {value}")
        elif kind == "p":
            out.append(value)
        elif kind == "pre":
            out.append(f"```\n{value}\n```")
        elif kind == "table":
            header, rows = value
            lines = [header, ["---"] * len(header), *rows]
            out.append("\n".join("| " + " | ".join(cell.replace("|", "\\|") for cell in line) + " |" for line in lines))
        elif kind == "img":
            path, caption = value
            out.append(f"![{caption}]({path.name})")
    return "\n\n".join(out) + "\n"


def to_html(blocks: Sequence[Block], title: str) -> str:
    """A self-contained page: the images are embedded as base64 data URIs."""
    esc = html.escape
    out = [f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(title)}</title><style>"
           "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
           "table{border-collapse:collapse;font-size:14px}td,th{border:1px solid #ccc;padding:4px 8px;"
           "text-align:left}th{background:#f3f3f3}pre{background:#f6f6f6;padding:1em;overflow:auto}"
           "img{max-width:100%}figure{margin:1em 0}</style></head><body>"]
    for kind, value in blocks:
        if kind in ("h1", "h2", "h3"):
            out.append(f"<{kind}>{esc(value)}</{kind}>")
        elif kind == "p":
            text = re.sub(r"`([^`]+)`", r"<code>\1</code>", esc(value))
            text = re.sub(r"[*][*]([^*]+)[*][*]", r"<b>\1</b>", text)
            out.append(f"<p>{text}</p>")
        elif kind == "pre":
            out.append(f"<pre>{esc(value)}</pre>")
        elif kind == "table":
            header, rows = value
            out.append("<table><tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr>"
                       + "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in rows)
                       + "</table>")
        elif kind == "img":
            path, caption = value
            data = base64.b64encode(path.read_bytes()).decode()
            out.append(f"<figure><img src='data:image/png;base64,{data}' alt='{esc(caption)}'>"
                       f"<figcaption>{esc(caption)}</figcaption></figure>")
    return "\n".join([*out, "</body></html>"]) + "\n"


def _git_revision() -> str:
    root = Path(__file__).resolve().parents[2]
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                             timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{rev}{' (with uncommitted changes)' if dirty else ''}" if rev else "unknown"


def environment() -> dict[str, str]:
    """Git revision, package versions and hardware, for the report's record."""
    import importlib.metadata as md

    env = {"git revision": _git_revision(), "python": platform.python_version()}
    for pkg in ("autoaug", "torch", "ray", "optuna", "mlflow"):
        try:
            env[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            env[pkg] = "not installed"
    env["hardware"] = describe()
    return env
