"""Report how many documentation snippets ran, were skipped (and why), or failed.

Each snippet test records its outcome in its report's `user_properties`; the reports reach the
process that prints the summary with or without pytest-xdist. The hooks are registered by
tests/conftest.py (pytest-xdist's controller loads only the conftest files of its arguments).
"""

from __future__ import annotations

STATS: dict[str, list] = {"ran": [], "skipped": [], "failed": []}


def pytest_runtest_logreport(report):
    if report.when != "teardown":  # the teardown report carries every property recorded
        return
    for name, value in report.user_properties:
        if name == "snippet":
            kind, block_id, detail = value
            STATS[kind].append((block_id, detail))


def pytest_terminal_summary(terminalreporter):
    from .test_snippets import BLOCKS

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
