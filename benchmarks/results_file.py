"""Where benchmark reports go: printed, and appended to benchmarks/RESULTS.md."""

from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def publish(text: str, append: bool = True) -> None:
    """Print a Markdown report and, unless `append` is false, append it to RESULTS.md."""
    print(text)
    if append:
        with open(RESULTS, "a") as fh:
            fh.write("\n" + text)
