"""Glue for the Snakemake rule scripts: one log file per job, threads, tracebacks.

Every script in ``workflow/scripts/`` is an adapter of a few lines::

    with job(snakemake):
        train_point(...)

``job`` sends logging, warnings, progress bars and any traceback to the rule's log file,
and limits torch to the rule's threads. It logs one line as the job starts (its rule,
wildcards and inputs), one per output written (path and size) and one as it ends (wall
time), so every log says what its job did, whatever the rule's function logs itself.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time


@contextlib.contextmanager
def job(smk):
    """Run a rule's work with its log file as stdout/stderr and logging target."""
    with (
        open(smk.log[0], "w", buffering=1) as log_file,
        contextlib.redirect_stdout(log_file),
        contextlib.redirect_stderr(log_file),
    ):
        logging.basicConfig(
            stream=log_file,
            level=logging.INFO,
            force=True,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
        logging.captureWarnings(True)
        _limit_threads(smk.threads)
        log = logging.getLogger("opscale.jobs")
        started = time.perf_counter()
        log.info("%s", _start_line(smk))
        try:
            yield
        except BaseException:
            logging.getLogger("opscale").exception("job failed")
            raise
        else:
            for path in smk.output:
                log.info("wrote %s (%s)", path, _size(path))
            log.info("rule %s done in %.1f s", smk.rule, time.perf_counter() - started)
        finally:
            sys.stderr.flush()


def _start_line(smk, shown: int = 3) -> str:
    """``rule collect (wildcards): reading 4 file(s): a, b, c, …``."""
    wildcards = dict(smk.wildcards.items())
    inputs = list(smk.input)
    listed = ", ".join(inputs[:shown]) + (", …" if len(inputs) > shown else "")
    where = f" {wildcards}" if wildcards else ""
    reading = f": reading {len(inputs)} file(s): {listed}" if inputs else ""
    return f"rule {smk.rule}{where}, {smk.threads} thread(s){reading}"


def _size(path: str) -> str:
    """A file's size for people (``12.3 kB``); ``absent`` if it is not there."""
    try:
        size = float(os.path.getsize(path))
    except OSError:
        return "absent"
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000


def _limit_threads(threads: int) -> None:
    """Limit torch's intra-op threads, if the job uses torch at all (it costs ~3 s to import)."""
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(max(1, int(threads)))
