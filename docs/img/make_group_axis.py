"""Draw docs/img/group_axis.png: which weights form one L2,1 group for each layer layout.

A group is one input feature of the head, i.e. every weight that reads that feature. Run from
the repository root (needs matplotlib):

    python docs/img/make_group_axis.py
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import Rectangle

OUT = Path(__file__).with_name("group_axis.png")
GROUP = 2  # the highlighted input feature j
HIGHLIGHT = "#e4572e"
OTHER = "#dfe7f2"
EDGE = "#5b6b7f"


def grid(ax, x0, y0, rows, cols, mark, cell=1.0):
    """Draw a rows x cols matrix with its top-left corner at (x0, y0); `mark(r, c)` colours."""
    for r in range(rows):
        for c in range(cols):
            face = HIGHLIGHT if mark(r, c) else OTHER
            ax.add_patch(
                Rectangle(
                    (x0 + c * cell, y0 - (r + 1) * cell), cell, cell, fc=face, ec=EDGE, lw=0.8
                )
            )


def finish(ax, title, caption, width, height):
    ax.set_xlim(-1.6, width + 0.5)
    ax.set_ylim(-height - 2.6, 1.6)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(title, fontsize=11, fontweight="bold")
    ax.text(
        width / 2, -height - 1.3, caption, ha="center", va="top", fontsize=9.5, family="monospace"
    )


def axis_labels(ax, top: str, side: str, width: float, height: float) -> None:
    """The label above the matrix (its columns) and the one down its left side (its rows)."""
    ax.text(width / 2, 0.5, top, ha="center", fontsize=9)
    ax.text(-0.4, -height / 2, side, rotation=-90, ha="center", va="center", fontsize=9)


def dense(ax):
    n_in, n_out = 6, 4
    grid(ax, 0, 0, n_in, n_out, lambda r, c: r == GROUP)
    axis_labels(ax, "out (units) →", "in (features) →", n_out, n_in)
    ax.text(n_out + 0.2, -GROUP - 0.5, f"j={GROUP}", va="center", fontsize=9, color=HIGHLIGHT)
    finish(ax, "Keras Dense kernel (in, out)", "group_axis=-2\ngroup j = kernel[j, :]", n_out, n_in)


def conv2d(ax):
    n_in, n_out, k = 6, 3, 3
    step_x, step_y = 0.55, 0.55
    # the kh * kw taps, each an (in, out) matrix; draw the back ones first
    for tap in reversed(range(k * k)):
        grid(ax, tap * step_x, -tap * step_y * 0.35, n_in, n_out, lambda r, c: r == GROUP)
    width = n_out + (k * k - 1) * step_x
    height = n_in + (k * k - 1) * step_y * 0.35
    axis_labels(ax, "out →", "in →", n_out, n_in)
    ax.text(width - 1.2, 0.5, "kh·kw taps ↘", ha="center", fontsize=9)
    finish(
        ax,
        "Keras Conv2D kernel (kh, kw, in, out)",
        "group_axis=-2\ngroup j = kernel[:, :, j, :]",
        width,
        height,
    )


def torch_linear(ax):
    n_out, n_in = 4, 6
    grid(ax, 0, 0, n_out, n_in, lambda r, c: c == GROUP)
    axis_labels(ax, "in (features) →", "out →", n_in, n_out)
    ax.text(GROUP + 0.5, -n_out - 0.45, f"j={GROUP}", ha="center", fontsize=9, color=HIGHLIGHT)
    finish(
        ax,
        "PyTorch nn.Linear weight (out, in)\n= the paper's W in z = W r",
        "group_axis=-1\ngroup j = weight[:, j]",
        n_in,
        n_out + 2,
    )


def main() -> None:
    fig, axes = plt.subplots(1, 3, figsize=(12, 4.4), gridspec_kw={"width_ratios": [1, 1.35, 1.3]})
    dense(axes[0])
    conv2d(axes[1])
    torch_linear(axes[2])
    fig.suptitle(
        "One L2,1 group = every weight that reads input feature j (highlighted); "
        "its L2 norm runs over all other axes",
        fontsize=10.5,
    )
    fig.tight_layout()
    # no timestamp in the PNG, so that rerunning the script gives the same file
    fig.savefig(OUT, dpi=110, metadata={"Software": None})
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
