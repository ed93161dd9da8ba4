"""Screenshots of the default study's report for the docs (``make screenshots``).

Headless chromium (Debian's ``chromium``; `.ci/run` installs it) opens
``results/report.html`` as a reader would and writes, under ``docs/images/``:

- ``report-landing.png``: the report's landing page (the text written from the study);
- ``report-interactive.png``: the report opened on Scaling › scaling_interactive.html
  (the interactive error vs n and vs N, drawn inside the report's frame);
- ``error_vs_n_train.png``: the scaling figure itself, copied from results/default/figures/.

Run ``make run`` first. The images show whatever the last run produced.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
IMAGES = REPO / "docs" / "images"
REPORT = REPO / "results" / "report.html"
FIGURE = REPO / "results" / "default" / "figures" / "error_vs_n_train.png"
BROWSERS = ("chromium", "chromium-browser", "google-chrome")
# clicks the report's Scaling category, then the eye button of the item `{name}`
OPEN_ITEM = """<script>
const item = (selector, has) => [...document.querySelectorAll(selector)].find(has);
setTimeout(() => item("a", (a) => a.textContent.trim() === "Scaling")?.click(), 1500);
setTimeout(() => item("tr", (row) => row.textContent.includes("{name}"))
  ?.querySelector('a[iconname="eye"]')?.click(), 3000);
</script>"""


def browser() -> str | None:
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


def screenshot(page: Path, out: Path, size: str = "1400,1000", budget: int = 15000) -> None:
    command = [browser(), "--headless", "--no-sandbox", "--disable-gpu", f"--window-size={size}"]
    command += [f"--virtual-time-budget={budget}", f"--screenshot={out}", page.as_uri()]
    subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)


def opened_on(report: Path, name: str, folder: Path) -> Path:
    """A copy of `report` that opens the item `name` once loaded."""
    text = report.read_text()
    end = text.rindex("</body>")
    page = folder / "report.html"
    page.write_text(text[:end] + OPEN_ITEM.replace("{name}", name) + text[end:])
    return page


def main() -> int:
    if browser() is None or not REPORT.exists():
        print("needs chromium and results/report.html (make run)")
        return 2
    IMAGES.mkdir(exist_ok=True)
    screenshot(REPORT, IMAGES / "report-landing.png")
    with tempfile.TemporaryDirectory() as tmp:
        page = opened_on(REPORT, "scaling_interactive.html", Path(tmp))
        screenshot(page, IMAGES / "report-interactive.png", size="1600,1250")
    shutil.copy(FIGURE, IMAGES / FIGURE.name)
    for name in ("report-landing.png", "report-interactive.png", FIGURE.name):
        print(f"docs/images/{name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
