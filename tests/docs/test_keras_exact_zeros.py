"""docs/keras.md's "Exact zeros" example switches head groups off exactly, as the page says.

The block is taken from the page (not a copy), run alone, and its promise checked against the
trained kernel itself: the count it prints is the number of rows of `W2` that are exactly 0,
some but not all of the 16, and more after the last epoch than after the first.
"""

from __future__ import annotations

import numpy as np
import pytest

from .snippets import ROOT, extract

keras = pytest.importorskip("keras")

PAGE = "docs/keras.md"
pytestmark = pytest.mark.keras_backend  # runs Keras models: under every backend in CI


def _example():
    text = (ROOT / PAGE).read_text(encoding="utf-8")
    section = text[text.index("## Exact zeros") :]
    block = extract(section, PAGE)[0]
    assert "ProximalL21" in block.code and "head_zero_groups" in block.code
    return block


def test_exact_zeros_example_gives_the_zeros_it_promises(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    ns = {"__name__": "__main__"}
    exec(compile(_example().code, str(ROOT / PAGE), "exec"), ns)  # the page's own code
    zeros = ns["history"].history["head_zero_groups"]
    assert capsys.readouterr().out.strip() == str(zeros)
    kernel = keras.ops.convert_to_numpy(ns["head"].kernel)  # (16, 4): a group is a row
    exact = int(np.sum(np.all(kernel == 0.0, axis=1)))
    assert zeros[-1] == exact
    assert 0 < exact < kernel.shape[0]
    assert zeros[0] < zeros[-1]
