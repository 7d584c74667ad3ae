"""One line per figure that ``bench/all.sh`` gathers into docs/benchmarks.md's summary.

Every bench prints its full report for people; besides, each figure that has a target
is printed once more as ``RESULT | name | measured | target | met|missed|info``.
"""

from __future__ import annotations


def result(name: str, measured: str, target: str, met: bool | None) -> None:
    """``met`` None: a figure shown for reference, with no target of its own."""
    verdict = "info" if met is None else ("met" if met else "missed")
    cells = (str(cell).replace("|", "/") for cell in (name, measured, target))
    print("RESULT | " + " | ".join(cells) + f" | {verdict}", flush=True)
