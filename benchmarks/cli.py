"""`python -m benchmarks`: run the ratio benchmarks, print the table, optionally write markdown.

Every number is a ratio of two things timed in this process, interleaved A B A B (see
`_harness`). A row marked NO misses its target; SKIP means a peer library is missing.
"""

from __future__ import annotations

import argparse
import datetime
import json
import shlex
import sys
import time
from collections.abc import Callable

from . import core
from ._harness import Row
from ._workers import KERAS_BACKENDS, select_backends
from .machine import machine_info, machine_markdown
from .report import markdown_table, text_table

__all__ = ["BENCHMARKS", "main"]

# name -> function(quick) -> rows. Order: cheapest first.
BENCHMARKS: dict[str, Callable[[bool], list[Row]]] = {
    "l21_norm": core.bench_l21_norm,
    "l21_prox": core.bench_l21_prox,
    "peers": core.bench_peers,
    "info_nce": core.bench_info_nce,
    "info_nce_memory": core.bench_info_nce_memory,
    "min_max": core.bench_min_max,
}


def _register_optional() -> None:
    from . import augment, keras_step, simclr, train

    BENCHMARKS["keras_l21"] = keras_step.bench_keras_l21
    BENCHMARKS["keras_prox"] = keras_step.bench_keras_prox
    BENCHMARKS["simclr"] = simclr.bench_simclr
    BENCHMARKS["augment"] = augment.bench_augment
    BENCHMARKS["train"] = train.bench_train


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    p.add_argument("--quick", action="store_true", help="small sizes and few repetitions")
    p.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        help="run only benchmarks whose name contains NAME (repeatable); see --list",
    )
    p.add_argument(
        "--backends",
        nargs="+",
        choices=KERAS_BACKENDS,
        help="the Keras backends of the per-backend benchmarks (default: all three)",
    )
    p.add_argument("--list", action="store_true", help="list benchmark names and exit")
    p.add_argument("--markdown", metavar="PATH", help="also write the table as markdown")
    p.add_argument("--json", metavar="PATH", help="also write rows and machine info as JSON")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    _register_optional()
    select_backends(args.backends)
    if args.list:
        print("\n".join(BENCHMARKS))
        return 0
    names = [n for n in BENCHMARKS if not args.only or any(o in n for o in args.only)]
    if not names:
        print(f"no benchmark matches {args.only}; choose from {list(BENCHMARKS)}", file=sys.stderr)
        return 2
    info = machine_info()
    print(machine_markdown(info), flush=True)
    rows: list[Row] = []
    t0 = time.perf_counter()
    for name in names:
        t = time.perf_counter()
        new = BENCHMARKS[name](args.quick)
        rows += new
        print(f"[{name}: {len(new)} rows, {time.perf_counter() - t:.1f} s]", flush=True)
    print()
    print(text_table(rows))
    cmd = "python -m benchmarks " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(f"\n{cmd}  ({time.perf_counter() - t0:.0f} s, {stamp})")
    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as f:
            f.write(f"Command: `{cmd}` ({stamp})\n\n{machine_markdown(info)}\n\n")
            f.write(markdown_table(rows) + "\n")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"command": cmd, "machine": info, "rows": [vars(r) for r in rows]}, f,
                      indent=1)  # fmt: skip
    return 0
