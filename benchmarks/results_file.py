"""Where benchmark reports go (printed, and appended to benchmarks/RESULTS.md), and the
machine they name."""

import platform
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def publish(text: str, append: bool = True) -> None:
    """Print a Markdown report and, unless `append` is false, append it to RESULTS.md."""
    print(text)
    if append:
        with open(RESULTS, "a") as fh:
            fh.write("\n" + text)


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo; elsewhere what platform says)."""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
        return next(line.split(":", 1)[1].strip() for line in cpuinfo if "model name" in line)
    except (OSError, StopIteration):
        return platform.processor()
