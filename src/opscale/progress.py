"""A training job's progress: its heartbeat file, its log lines and its console bar.

Heartbeat. A training job keeps a small JSON file of its own
(``results/<study>/heartbeats/<point_id>.json``, ``StudyLayout.heartbeat``)::

    {"pid": 4242, "host": "node17", "started": 1764698400.1, "updated": 1764698460.3,
     "step": 1200, "total": 4000, "first_step": 0, "loop_started": 1764698404.0}

written atomically (temp name, then rename) when the job starts and every ``INTERVAL``
seconds after by a background thread, so a long step, the data loading or the final
evaluation never make a live job look stale. Times are seconds since the epoch;
``first_step`` and ``loop_started`` are the step and time the step loop began at (a
resumed job begins at its checkpoint's step), the rate of an ETA. A job that ends well
removes the file (its point file says the rest); a job that raises writes it one last
time with ``ended`` and ``error`` (``stopped by SIGTERM (exit status 143)``, say).
``opscale status`` reads it (``judge``): fresh (updated within ``STALE`` seconds) and, on
the host it reads from, its process alive: running; else the job is gone.

Log lines and bar. In a job's log (not a terminal) the trainer writes one plain line
per ``INTERVAL`` seconds (``step 1200/4000 (30%)  loss 3.1e-03  best val 4.2e-02
active 6/8  21.4 steps/s  eta 0:02:10``); on a terminal the same numbers are a tqdm
bar's postfix. Standard library and tqdm only.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import math
import os
import socket
import sys
import threading
import time
from pathlib import Path

log = logging.getLogger(__name__)

INTERVAL = 5.0  # seconds between heartbeat writes and between progress lines
STALE = 60.0  # a heartbeat not updated for this long belongs to a job that is gone


class Heartbeat:
    """The heartbeat file of one job: ``with Heartbeat(path) as beat: ... beat.update(...)``.

    Parameters
    ----------
    path : str or Path or None
        The file to keep; None keeps nothing (``update`` still works).
    interval : float
        Seconds between writes (s).
    """

    def __init__(self, path, interval: float = INTERVAL):
        self.path = None if path is None else Path(path)
        self.interval = interval
        now = time.time()
        self.fields = {"pid": os.getpid(), "host": socket.gethostname(), "started": now}
        self.fields |= {"updated": now, "step": 0, "total": None}
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._beat, daemon=True, name="heartbeat")

    def __enter__(self) -> Heartbeat:
        if self.path is not None:
            self.write()
            self.thread.start()
        return self

    def __exit__(self, kind, error, traceback) -> None:
        self.done.set()
        if self.path is None:
            return
        self.thread.join()
        if error is None:
            self.path.unlink(missing_ok=True)
        else:
            self.update(ended=time.time(), error=str(error) or kind.__name__)
            self.write()

    def update(self, **fields) -> None:
        """Set fields (``step``, ``total``, ...) for the next write; no file I/O here."""
        with self.lock:
            self.fields.update(fields)

    def write(self) -> None:
        """Write the fields now, atomically (temp name, then rename)."""
        with self.lock:
            self.fields["updated"] = time.time()
            text = json.dumps(self.fields)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(text)
        os.replace(tmp, self.path)

    def _beat(self) -> None:
        while not self.done.wait(self.interval):
            with contextlib.suppress(OSError):  # a full disk must not kill the training
                self.write()


def read_heartbeat(path) -> dict | None:
    """The heartbeat at `path`; None when there is none or it does not parse."""
    try:
        beat = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return beat if isinstance(beat, dict) else None


def judge(beat: dict, now: float | None = None, host: str | None = None) -> tuple[bool, str]:
    """Whether the job of heartbeat `beat` is running, and why (or why not).

    Running: not ended, updated within ``STALE`` seconds of `now` and, when it was written
    on `host` (default: this machine), its process is alive. Returns (running, reason).
    """
    now = time.time() if now is None else now
    host = socket.gethostname() if host is None else host
    steps = f"{beat.get('step', 0)}/{beat.get('total') or '?'}"
    at = f"at step {steps}"
    if "ended" in beat:
        return False, f"job ended {at}: {beat.get('error', 'error')}"
    age = now - float(beat.get("updated", 0))
    if age > STALE:
        return False, f"heartbeat stale for {_clock(age)} {at}: killed, or its node is gone"
    if beat.get("host") == host and not pid_alive(int(beat.get("pid", -1))):
        return False, f"process {beat.get('pid')} on {host} is gone {at}: killed"
    if "loop_started" not in beat:
        return True, "starting: reading data, building the models"
    return True, f"step {steps}" + _eta(beat)


def pid_alive(pid: int) -> bool:
    """Whether process `pid` exists on this machine and is not a zombie."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    stat = Path(f"/proc/{pid}/stat")
    with contextlib.suppress(OSError):  # Linux: a zombie has exited, just not been reaped
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return True


def eta(beat: dict) -> float | None:
    """Seconds left at the heartbeat's own rate since its step loop began; None: unknown.

    An upper-bound-ish guess: members that stop early make the later steps cheaper.
    """
    step, total, first = beat.get("step", 0), beat.get("total"), beat.get("first_step")
    began = beat.get("loop_started")
    if not total or first is None or began is None or step <= first:
        return None
    rate = (step - first) / max(float(beat["updated"]) - began, 1e-9)
    return (total - step) / rate


def _eta(beat: dict) -> str:
    left = eta(beat)
    return "" if left is None else f", eta {_clock(left)}"


def _clock(seconds: float) -> str:
    return str(datetime.timedelta(seconds=round(seconds)))


class Progress:
    """The progress of a training loop: heartbeat, and a log line or a bar every `interval`.

    ``report(step, values)`` is called by the trainer every step; it costs a clock read
    except every `interval` seconds, when ``values()`` (one host read of the trainer's
    loss, best validation error and active members) is called and shown.
    """

    def __init__(self, total: int, first: int, heartbeat: Heartbeat | None = None, **bar):
        self.total, self.first, self.heartbeat = total, first, heartbeat
        self.began = self.last = time.time()
        self.interval = bar.pop("interval", INTERVAL)
        self.bar = _console_bar(total, first, bar) if sys.stderr.isatty() else None
        if heartbeat is not None:
            heartbeat.update(step=first, total=total, first_step=first, loop_started=self.began)

    def report(self, step: int, values) -> None:
        """Step `step` done; `values()` -> (mean loss, best val error, active, members)."""
        if self.heartbeat is not None:
            self.heartbeat.update(step=step)
        if self.bar is not None:
            self.bar.update(step - self.bar.n)
        now = time.time()
        if now - self.last < self.interval and step < self.total:
            return
        self.last = now
        loss, best, active, members = values()
        shown = {"loss": f"{loss:.3g}", "best val": f"{best:.3g}", "active": f"{active}/{members}"}
        if self.bar is not None:
            self.bar.set_postfix(shown, refresh=False)
            return
        rate = (step - self.first) / max(now - self.began, 1e-9)
        left = f"  eta {_clock((self.total - step) / rate)}" if rate > 0 else ""
        log.info(
            "step %d/%d (%d%%)  %s  %.3g steps/s%s",
            step,
            self.total,
            100 * step // max(self.total, 1),
            "  ".join(f"{name} {value}" for name, value in shown.items()),
            rate,
            left,
        )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _console_bar(total: int, first: int, options: dict):
    from tqdm import tqdm

    return tqdm(total=total, initial=first, desc="train", **options)


def summary(results: dict, budget, wall: float) -> str:
    """The end-of-job line: best errors, members stopped early and diverged, wall time.

    `results` holds the point's per-member arrays (``test_rel_l2``, ``val_rel_l2``,
    ``status``, ``steps_trained``); `budget` each member's step budget; `wall` seconds.
    """
    status, trained = list(results["status"]), list(results["steps_trained"])
    diverged = sum(int(s) != 0 for s in status)
    early = sum(int(s) == 0 and t < b for s, t, b in zip(status, trained, budget, strict=True))
    errors = [
        f"best {split} rel L2 {_best(results[f'{split}_rel_l2'])}"
        for split in ("val", "test")
        if f"{split}_rel_l2" in results
    ]
    return (
        f"job done: {len(status)} members, {', '.join(errors)}, {early} stopped early, "
        f"{diverged} diverged, wall time {wall:.1f} s"
    )


def _best(values) -> str:
    finite = [float(v) for v in values if math.isfinite(float(v))]
    return f"{min(finite):.3g}" if finite else "n/a"
