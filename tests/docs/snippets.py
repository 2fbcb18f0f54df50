"""Find the ```python code blocks of the documentation, and what each one needs to run.

A page's blocks form one script: they run in order in one namespace, so a later block may use
what an earlier block defined. A block is skipped only when

- the line before its fence is `<!-- skip: reason -->` (rare, and the reason is reported), or
- it, or an earlier block of its page, imports a package that is not installed (e.g. torch
  on a machine without it); for Keras, the backend named by KERAS_BACKEND must be installed.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LANGS = {"python", "py"}
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`\n]*)$")
SKIP = re.compile(r"^\s*<!--\s*skip(?::\s*(?P<reason>.*?))?\s*-->\s*$")

# names of the top-level `sparsehead` package that load an adapter, and so a framework
_LAZY_KERAS = {"L21", "ProjectionHead", "ProximalL21", "SparsityMonitor"}
_ADAPTER_NEEDS = {
    "keras": ("keras",),
    "torch": ("torch",),
    "optax": ("jax", "optax"),
    "lightning": ("torch", "lightning"),
}


@dataclass
class Block:
    """One fenced code block: its page, first code line (1-based), source and skip marker."""

    page: str
    line: int
    code: str
    skip_reason: str | None = None
    needs: set[str] = field(default_factory=set)

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"


def extract(text: str, page: str = "<text>") -> list[Block]:
    """The ```python / ```py blocks of a Markdown text, indented ones (tabs, admonitions) too."""
    lines = text.splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, info = m["indent"], m["fence"], m["info"].strip()
        close = re.compile(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$")
        j = i + 1
        while j < len(lines) and not close.match(lines[j]):
            j += 1
        lang = info.split()[0].lstrip("{.").rstrip("}").lower() if info else ""
        if lang in LANGS:
            body = [ln[len(indent) :] if ln.startswith(indent) else ln for ln in lines[i + 1 : j]]
            blocks.append(
                Block(page, i + 2, textwrap.dedent("\n".join(body)) + "\n", _skip_marker(lines, i))
            )
        i = j + 1
    return blocks


def _skip_marker(lines: list[str], fence_index: int) -> str | None:
    k = fence_index - 1
    while k >= 0 and not lines[k].strip():
        k -= 1
    if k < 0:
        return None
    m = SKIP.match(lines[k])
    if not m:
        return None
    return m["reason"] or "marked <!-- skip --> in the page"


def imported_packages(code: str) -> set[str]:
    """Top-level packages a block imports, with the frameworks behind `sparsehead` adapters."""
    needs: set[str] = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            names = [f"{node.value.id}.{node.attr}"] if node.value.id == "sparsehead" else []
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] != "sparsehead":
                needs.add(parts[0])
            elif len(parts) > 1 and parts[1] in _LAZY_KERAS:
                needs.add("keras")
            elif len(parts) > 2 and parts[1] == "adapters":
                needs.update(_ADAPTER_NEEDS.get(parts[2], ()))
    return needs


def missing(packages: set[str]) -> list[str]:
    """The packages among `packages` that cannot be imported here (Keras: with its backend)."""
    absent = sorted(p for p in packages if importlib.util.find_spec(p) is None)
    if "keras" in packages and "keras" not in absent:
        backend = os.environ.get("KERAS_BACKEND", "tensorflow")
        if importlib.util.find_spec(backend) is None:
            absent.append(f"{backend} (KERAS_BACKEND={backend})")
    return absent


def pages() -> list[Path]:
    """README.md and every Markdown page of the site."""
    found = sorted((ROOT / "docs").rglob("*.md"))
    readme = ROOT / "README.md"
    return ([readme] if readme.exists() else []) + found


def collect() -> list[Block]:
    """Every python block of every page, each with the packages its page needs up to it."""
    blocks: list[Block] = []
    for path in pages():
        rel = path.relative_to(ROOT).as_posix()
        needs: set[str] = set()
        for block in extract(path.read_text(encoding="utf-8"), rel):
            try:
                needs |= imported_packages(block.code)
            except SyntaxError:
                pass  # reported when the block runs
            block.needs = set(needs)
            blocks.append(block)
    return blocks
