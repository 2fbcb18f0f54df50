"""Baseline vs SparseHead (penalty and proximal step, several lambdas) x several seeds.

Prints a markdown table (mean +- std over seeds of linear and 5-NN accuracy on the
representation, effective rank of representation and embedding, head group sparsity) beside
the paper's Table 1 row for the same method and dataset, and overlays the eigenvalue spectra
of the settings as in Fig. 3.

    python reference/reproduce.py --method simclr --l21 1e-4 1e-2 --seeds 0 1 2 \\
        --out runs/reproduce -- --epochs 10 --train-size 4096

Everything after `--` goes to the training script's command line (see
`python reference/train_simclr.py --help`); the same data, network and schedule are used for
every setting.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a script
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from reference.cli import config_from_args
from reference.names import METHODS
from reference.report import plot_spectra, write_json

__all__ = ["PAPER_TABLE1", "main", "markdown_table", "summarise"]

#: Table 1 of the paper ("Towards the Sparseness of Projection Head in Self-Supervised
#: Learning"): linear and 5-NN accuracy (%), ResNet-18, for the datasets our loaders cover.
PAPER_TABLE1: dict[tuple[str, bool], dict[str, tuple[float, float]]] = {
    ("simclr", False): {"cifar10": (91.80, 88.42), "cifar100": (66.83, 56.57),
                        "stl10": (90.51, 85.68), "tiny-imagenet": (48.82, 32.86)},
    ("byol", False): {"cifar10": (91.73, 89.26), "cifar100": (66.60, 56.82),
                      "stl10": (91.86, 88.61), "tiny-imagenet": (51.01, 36.14)},
    ("barlow-twins", False): {"cifar10": (90.88, 88.78), "cifar100": (66.67, 56.39),
                              "stl10": (90.71, 86.31), "tiny-imagenet": (49.74, 33.61)},
    ("simclr", True): {"cifar10": (92.75, 90.32), "cifar100": (67.55, 56.84),
                       "stl10": (92.24, 88.49), "tiny-imagenet": (51.42, 36.16)},
    ("byol", True): {"cifar10": (92.45, 90.05), "cifar100": (67.52, 56.86),
                     "stl10": (92.60, 88.63), "tiny-imagenet": (52.16, 36.74)},
    ("barlow-twins", True): {"cifar10": (91.28, 89.87), "cifar100": (66.91, 56.47),
                             "stl10": (91.45, 88.46), "tiny-imagenet": (51.49, 35.26)},
}  # fmt: skip
PAPER_CITATION = (
    "Table 1 of 'Towards the Sparseness of Projection Head in Self-Supervised Learning' "
    "(ResNet-18, 1000-2000 epochs)"
)

_COLUMNS = (
    ("linear (r)", "linear_representation", 100.0),
    ("5-NN (r)", "knn5_representation", 100.0),
    ("linear (z)", "linear_embedding", 100.0),
    ("5-NN (z)", "knn5_embedding", 100.0),
    ("eff. rank r", "effective_rank_representation", 1.0),
    ("eff. rank z", "effective_rank_embedding", 1.0),
)


def settings(l21s: list[float], penalty: bool, proximal: bool) -> list[tuple[str, dict]]:
    """(label, overrides) for the baseline and each SparseHead variant."""
    out = [("baseline", {"l21": 0.0, "proximal": False})]
    for lam in l21s:
        if penalty:
            out.append((f"SparseHead penalty λ={lam:g}", {"l21": lam, "proximal": False}))
        if proximal:
            out.append((f"SparseHead proximal λ={lam:g}", {"l21": lam, "proximal": True}))
    return out


def summarise(runs: list[dict]) -> dict[str, tuple[float, float]]:
    """Mean and standard deviation (ddof 0 for one seed) over seeds of each column."""
    out = {}
    for _, key, scale in _COLUMNS:
        v = np.array([r["metrics"]["trained"][key] * scale for r in runs])
        out[key] = (float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0)
    sparsity = [r["metrics"]["trained"].get("head_sparsity") for r in runs]
    if all(sparsity):
        for key in ("groups_95_energy", "zero_groups", "frac_below_1pct"):
            v = np.array([s[key] for s in sparsity], dtype=float)
            out[key] = (float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0)
        out["groups"] = (float(sparsity[0]["groups"]), 0.0)
    init = np.array([r["metrics"]["random_init"]["linear_representation"] * 100 for r in runs])
    out["random_init_linear_representation"] = (float(init.mean()), 0.0)
    return out


def _pm(m: tuple[float, float], digits: int = 2) -> str:
    return f"{m[0]:.{digits}f} ± {m[1]:.{digits}f}"


def markdown_table(method: str, dataset: str, rows: list[tuple[str, dict]], seeds) -> str:
    """The markdown table of `rows` ((label, summary)) and the paper's matching row."""
    head = [c for c, _, _ in _COLUMNS] + ["head: groups for 95% energy", "exact zero groups"]
    lines = [
        f"{method} on {dataset}, seeds {list(seeds)} (mean ± std; accuracy in %; r = "
        "representation, z = embedding)",
        "",
        "| setting | " + " | ".join(head) + " |",
        "|---" * (len(head) + 1) + "|",
    ]
    for label, s in rows:
        cells = [_pm(s[key], 2 if scale > 1 else 1) for _, key, scale in _COLUMNS]
        if "groups_95_energy" in s:
            g = int(s["groups"][0])
            cells += [f"{_pm(s['groups_95_energy'], 1)} / {g}", _pm(s["zero_groups"], 1)]
        else:
            cells += ["-", "-"]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    for sparse in (False, True):
        paper = PAPER_TABLE1.get((method, sparse), {}).get(dataset)
        label = f"paper: {method}{' + SparseHead' if sparse else ''}"
        if paper:
            lines.append(
                f"| {label} | {paper[0]:.2f} | {paper[1]:.2f} |" + " - |" * (len(head) - 2)
            )
    if not PAPER_TABLE1.get((method, False), {}).get(dataset):
        lines += ["", f"The paper has no row for {dataset}; for CIFAR-10 it reports:"]
        for sparse in (False, True):
            lin, knn = PAPER_TABLE1[(method, sparse)]["cifar10"]
            lines.append(f"- {method}{' + SparseHead' if sparse else ''}: linear {lin:.2f}, "
                         f"5-NN {knn:.2f}")  # fmt: skip
    lines += ["", f"Source of the paper's numbers: {PAPER_CITATION}."]
    return "\n".join(lines)


def main(argv=None) -> dict:
    argv = list(sys.argv[1:] if argv is None else argv)
    train_argv = argv[argv.index("--") + 1 :] if "--" in argv else []
    own = argv[: argv.index("--")] if "--" in argv else argv
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--method", choices=METHODS, default="simclr")
    p.add_argument("--l21", type=float, nargs="+", default=[1e-4], help="lambda values")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--no-penalty", action="store_true", help="skip the penalty variant")
    p.add_argument("--no-proximal", action="store_true", help="skip the proximal variant")
    p.add_argument("--out", default="runs/reproduce")
    args = p.parse_args(own)

    import keras

    from reference.training import run

    out = Path(args.out)
    base = config_from_args(args.method, [*train_argv, "--quiet"])
    rows, curves, all_runs = [], {}, {}
    for label, overrides in settings(args.l21, not args.no_penalty, not args.no_proximal):
        runs = []
        for seed in args.seeds:
            tag = label.split(" λ")[0].replace("SparseHead ", "").replace(" ", "-")
            lam = overrides["l21"]
            cfg = {**base, **overrides, "seed": seed,
                   "out": str(out / f"{tag}-l21_{lam:g}-seed{seed}")}  # fmt: skip
            keras.utils.clear_session()
            res = run(cfg, verbose=0)
            acc = res["metrics"]["trained"]
            print(f"{label:<32} seed {seed}: linear {acc['linear_representation']:.4f}, "
                  f"5-NN {acc['knn5_representation']:.4f}", flush=True)  # fmt: skip
            runs.append(res)
            if seed == args.seeds[0]:
                spectra = np.load(Path(cfg["out"]) / "spectra.npz")
                curves[label] = {k: spectra[f"trained_{k}"] for k in ("representation",
                                                                       "embedding")}  # fmt: skip
        rows.append((label, summarise(runs)))
        all_runs[label] = [r["config"]["out"] for r in runs]
    table = markdown_table(args.method, base["dataset"], rows, args.seeds)
    out.mkdir(parents=True, exist_ok=True)
    (out / "table.md").write_text(table + "\n")
    plot_spectra(out / "spectra_overlay.png", curves,
                 title=f"{args.method} on {base['dataset']}: baseline vs SparseHead (seed "
                 f"{args.seeds[0]})")  # fmt: skip
    report = {"method": args.method, "dataset": base["dataset"], "seeds": args.seeds,
              "train_args": train_argv, "rows": dict(rows), "runs": all_runs,
              "paper_citation": PAPER_CITATION}  # fmt: skip
    write_json(out / "reproduce.json", report)
    print(table)
    return report


if __name__ == "__main__":
    main()
