"""Every ```python block in README.md and docs/ runs, so the documentation cannot rot.

Blocks of one page run in order in one namespace, in a scratch directory, with
`__name__ == "__main__"`. Keras uses the backend named by KERAS_BACKEND: run this file once per
backend, like the rest of the suite. The terminal summary says how many blocks ran. A block that
uses one of sparsehead's deprecated argument names fails: the docs teach the current ones.
"""

from __future__ import annotations

import os
import re
import time
import traceback
import warnings

import pytest

from .snippets import ROOT, Block, collect, extract, imported_packages, missing

os.environ.setdefault("MPLBACKEND", "Agg")

BLOCKS = collect()
DEPRECATED = r".*is deprecated and will be removed in the next release"  # adapters/_deprecation.py
_PAGES: dict[str, dict] = {}


def _page_state(block: Block, tmp_path_factory) -> dict:
    if block.page not in _PAGES:
        name = re.sub(r"\W", "_", block.page)
        _PAGES[block.page] = {
            "ns": {"__name__": "__main__"},
            "done": set(),
            "broken": None,
            "cwd": tmp_path_factory.mktemp(name),
        }
    return _PAGES[block.page]


def _execute(block: Block, state: dict, monkeypatch) -> None:
    # compiled as the page itself, at the block's line: tracebacks point into the Markdown file
    code = compile("\n" * (block.line - 1) + block.code, str(ROOT / block.page), "exec")
    monkeypatch.chdir(state["cwd"])
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("error", DEPRECATED, DeprecationWarning)
            exec(code, state["ns"])  # running the docs is the point of this test
    finally:
        monkeypatch.undo()
        state["done"].add(block.line)


# a page that uses Keras runs under every backend in CI (the `keras_backend` marker)
@pytest.mark.parametrize(
    "block",
    [
        pytest.param(b, id=b.id, marks=[pytest.mark.keras_backend] if "keras" in b.needs else [])
        for b in BLOCKS
    ],
)
def test_snippet_runs(block: Block, tmp_path_factory, monkeypatch, request) -> None:
    # read by conftest.py's summary from the test's report (so it works under pytest-xdist too)
    def stat(kind: str, value) -> None:
        request.node.user_properties.append(("snippet", (kind, block.id, value)))

    if block.skip_reason is not None:
        stat("skipped", block.skip_reason)
        pytest.skip(f"marked in the page: {block.skip_reason}")
    absent = missing(block.needs)
    if absent:
        reason = f"needs {', '.join(absent)}, not installed"
        stat("skipped", reason)
        pytest.skip(reason)
    state = _page_state(block, tmp_path_factory)
    # run the page's earlier blocks first if they have not run (e.g. under `pytest -k`)
    for earlier in (b for b in BLOCKS if b.page == block.page and b.line < block.line):
        if (
            state["broken"] is None
            and earlier.skip_reason is None
            and earlier.line not in state["done"]
        ):
            try:
                _execute(earlier, state, monkeypatch)
            except Exception:
                state["broken"] = earlier.id
    if state["broken"] is not None:
        reason = f"an earlier block of the page failed: {state['broken']}"
        stat("skipped", reason)
        pytest.skip(reason)
    start = time.perf_counter()
    try:
        _execute(block, state, monkeypatch)
    except Exception:
        state["broken"] = block.id
        stat("failed", traceback.format_exc(limit=-3))
        raise
    stat("ran", time.perf_counter() - start)


def test_snippets_found() -> None:
    """The extractor sees the site's blocks (a test that runs none would prove nothing)."""
    assert len(BLOCKS) >= 10, [b.id for b in BLOCKS]
    assert {b.page for b in BLOCKS} >= {"docs/getting-started.md", "docs/concepts.md"}


def test_extractor_on_a_known_page() -> None:
    text = "\n".join(
        [
            "# t",
            "```python",
            "x = 1",
            "```",
            "```bash",
            "echo no",
            "```",
            "<!-- skip: downloads a dataset -->",
            "",
            "```py title='a'",
            "y = 2",
            "```",
            '=== "Tab"',
            "",
            "    ```python",
            "    if x:",
            "        z = 3",
            "    ```",
            "````python",
            "s = '''",
            "```",
            "'''",
            "````",
        ]
    )
    blocks = extract(text)
    assert [b.line for b in blocks] == [3, 11, 16, 20]
    assert [b.skip_reason for b in blocks] == [None, "downloads a dataset", None, None]
    assert blocks[2].code == "if x:\n    z = 3\n"
    assert blocks[3].code == "s = '''\n```\n'''\n"


def test_imported_packages() -> None:
    code = (
        "import numpy as np\nimport sparsehead\nfrom torch import nn\n"
        "reg = sparsehead.L21(1e-4)\nfrom sparsehead.adapters.optax import l21_penalty\n"
    )
    assert imported_packages(code) == {"numpy", "torch", "keras", "jax", "optax"}
    assert imported_packages("import sparsehead\nsparsehead.l21_norm([[1.0]])") == set()
    assert missing({"numpy"}) == []
    assert missing({"surely_not_a_package_xyz"}) == ["surely_not_a_package_xyz"]


def _quick_start_commands(text: str) -> list[str]:
    """Shell commands in ```bash / ```sh / ```console blocks, one per non-comment line."""
    commands = []
    for m in re.finditer(r"^```(?:bash|sh|shell|console)\n(.*?)^```", text, re.M | re.S):
        for line in m.group(1).splitlines():
            line = line.strip().removeprefix("$ ").strip()
            if line and not line.startswith("#"):
                commands.append(line)
    return commands


def test_quick_start_matches_readme() -> None:
    """The README's quick-start commands appear verbatim on the Getting-started page."""
    readme = ROOT / "README.md"
    if not readme.exists():
        pytest.skip("README.md does not exist yet")
    wanted = [
        c
        for c in _quick_start_commands(readme.read_text(encoding="utf-8"))
        if "train_simclr.py" in c or ".ci/run" in c
    ]
    if not wanted:
        pytest.skip("README.md has no quick-start commands yet")
    page = (ROOT / "docs" / "getting-started.md").read_text(encoding="utf-8")
    assert set(wanted) <= set(_quick_start_commands(page)), wanted
