"""The result table, as plain text for the terminal and as markdown for the docs."""

from __future__ import annotations

from ._harness import Row

__all__ = ["markdown_table", "text_table"]

_HEAD = ("group", "benchmark", "reference point", "median", "min", "max", "target", "ok",
         "reps", "A ms", "B ms", "note")  # fmt: skip


def _fmt(x: float, unit: str = "x") -> str:
    if x != x:
        return "-"
    if unit == "x":
        return f"{x:.3f}x"
    return f"{x:.1f}{unit}"


def _cells(r: Row) -> tuple[str, ...]:
    ok = "SKIP" if r.reps == 0 else ("yes" if r.ok else "NO")
    ms = lambda v: "-" if v != v else f"{v:.2f}"  # noqa: E731
    return (r.group, r.name, r.baseline, _fmt(r.ratio, r.unit), _fmt(r.ratio_min, r.unit),
            _fmt(r.ratio_max, r.unit), r.target, ok, str(r.reps), ms(r.a_ms), ms(r.b_ms),
            r.note)  # fmt: skip


def text_table(rows: list[Row]) -> str:
    cells = [_HEAD, *(_cells(r) for r in rows)]
    widths = [max(len(c[i]) for c in cells) for i in range(len(_HEAD))]
    lines = ["  ".join(c[i].ljust(widths[i]) for i in range(len(_HEAD))) for c in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(rows: list[Row]) -> str:
    esc = lambda s: s.replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(_HEAD) + " |", "|" + "---|" * len(_HEAD)]
    lines += ["| " + " | ".join(esc(c) for c in _cells(r)) + " |" for r in rows]
    return "\n".join(lines)
