"""Output of a run: plots (matplotlib, Agg), `results.json` and the one-screen summary."""

from __future__ import annotations

import json
import platform
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

__all__ = ["plot_group_norms", "plot_spectra", "summary", "versions", "write_json"]


def versions() -> dict[str, str]:
    """Versions of the libraries a result depends on."""
    import keras
    import sklearn

    import sparsehead

    out = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "keras": keras.__version__,
        "scikit-learn": sklearn.__version__,
        "sparsehead": sparsehead.__version__,
    }
    backend = keras.backend.backend()
    module = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}.get(backend)
    if module:
        out[module] = __import__(module).__version__
    return out


def _log_plot(ax, values, label, **kw):
    v = np.asarray(values, dtype=np.float64)
    ax.semilogy(np.arange(1, len(v) + 1), np.maximum(v, 1e-12), label=label, **kw)


def plot_spectra(path: Path, curves: dict[str, dict[str, np.ndarray]], title: str = "") -> None:
    """Log-scale eigenvalue spectra (Fig. 1, 3): one panel each for representation and
    embedding, one curve per entry of `curves` (label -> {"representation": ..., ...})."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, space in zip(axes, ("representation", "embedding"), strict=True):
        for label, spectra in curves.items():
            _log_plot(ax, spectra[space], label)
        ax.set(title=f"{space} covariance", xlabel="index", ylabel="eigenvalue (log)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_group_norms(path: Path, norms: np.ndarray, title: str = "") -> None:
    """Sorted group norms `||W_j||_2` of the head's last kernel, log scale."""
    fig, ax = plt.subplots(figsize=(5, 4))
    _log_plot(ax, norms, "group norm")
    ax.set(title=title or "head group norms (sorted)", xlabel="group", ylabel="||W_j||_2 (log)")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_json(path: Path, obj) -> None:
    """Write `obj` as indented JSON atomically (`rundir.write_atomic`: a temporary file,
    fsync'ed, then renamed over `path`)."""
    from .rundir import write_atomic

    write_atomic(path, json.dumps(obj, indent=2, default=_default))


def _default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def summary(results: dict) -> str:
    """The one-screen summary printed at the end of a run."""
    cfg, m, t = results["config"], results["metrics"], results["timing"]
    trained, init = m["trained"], m["random_init"]
    lines = [
        f"{results['method']} on {cfg['dataset']} ({cfg['train_size']} train / "
        f"{cfg['test_size']} test images), backbone {cfg['backbone']}, head {cfg['head']}, "
        f"l21 {cfg['l21']}{' (proximal)' if cfg['proximal'] else ''}, "
        f"backend {results['backend']}",
        f"epochs {results['epochs_completed']}, train {t['train_seconds']:.1f} s, "
        f"{t['train_images_per_second']:.0f} images/s, total {t['total_seconds']:.1f} s",
        "",
        f"{'accuracy':<26}{'trained':>10}{'random init':>14}",
    ]
    for key in (
        "linear_representation",
        "knn5_representation",
        "linear_embedding",
        "knn5_embedding",
    ):
        lines.append(f"{key:<26}{trained[key]:>10.4f}{init[key]:>14.4f}")
    if "raw_pixels" in m:
        lines.append(f"{'knn5 on raw pixels':<26}{m['raw_pixels']['knn5']:>10.4f}")
    lines += [
        "",
        f"effective rank  representation {trained['effective_rank_representation']:.1f}, "
        f"embedding {trained['effective_rank_embedding']:.1f}",
        f"RankMe          representation {trained['rankme_representation']:.1f}, "
        f"embedding {trained['rankme_embedding']:.1f}",
        f"min-max distance ratio (embedding) {trained['min_max_ratio_embedding']:.3f}",
    ]
    if "head_sparsity" in trained:
        s = trained["head_sparsity"]
        lines.append(
            f"head: L2,1 {s['l21']:.3f}; {s['groups_95_energy']}/{s['groups']} groups hold 95% "
            f"energy; {s['frac_below_1pct']:.1%} below 1% of max; {s['zero_groups']} exact zeros"
        )
    lines.append(f"output: {cfg['out']}")
    return "\n".join(lines)
