"""Tests train tiny models: one thread each is faster than two, and far faster when the
machine is shared (OpenMP threads of small ops spin against each other)."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # inherited by subprocesses (Snakemake jobs)

import torch  # noqa: E402

torch.set_num_threads(1)
