"""Glue for the Snakemake rule scripts: one log file per job, threads, tracebacks.

Every script in ``workflow/scripts/`` is an adapter of a few lines::

    with job(snakemake):
        train_point(...)

``job`` sends logging, warnings, progress bars and any traceback to the rule's log file,
and limits torch to the rule's threads.
"""

from __future__ import annotations

import contextlib
import logging
import sys


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
        try:
            yield
        except BaseException:
            logging.getLogger("opscale").exception("job failed")
            raise
        finally:
            sys.stderr.flush()


def _limit_threads(threads: int) -> None:
    """Limit torch's intra-op threads, if the job uses torch at all (it costs ~3 s to import)."""
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(max(1, int(threads)))
