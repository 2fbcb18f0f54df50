"""Report how many documentation snippets ran, were skipped (and why), or failed."""

from __future__ import annotations


def pytest_terminal_summary(terminalreporter):
    from .test_snippets import BLOCKS, STATS

    if not any(STATS.values()):
        return
    tr = terminalreporter
    ran, skipped, failed = STATS["ran"], STATS["skipped"], STATS["failed"]
    total = sum(t for _, t in ran)
    tr.section("documentation snippets")
    tr.write_line(
        f"{len(BLOCKS)} python blocks found; ran {len(ran)} ({total:.1f} s), "
        f"skipped {len(skipped)}, failed {len(failed)}"
    )
    for block_id, reason in skipped:
        tr.write_line(f"  skipped {block_id}: {reason}")
    for block_id, seconds in sorted(ran, key=lambda r: -r[1])[:5]:
        tr.write_line(f"  slowest {block_id}: {seconds:.2f} s")
