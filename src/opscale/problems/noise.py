"""Label noise: Gaussian noise on the training and validation labels (``problem.noise``).

The noise of seed s and split k has standard deviation ``problem.noise`` times the RMS of
the seed's clean *test* outputs, and is drawn from its own named stream, row by row, so a
smaller training set still holds a prefix of the larger one's (noisy) labels. The test
labels stay clean: the test error is the excess risk, which the theory's data rates (for
noisy labels) describe.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from opscale.rng import numpy_rng

NOISY_SPLITS = ("train", "val")


def add_label_noise(ds: xr.Dataset, problem: dict) -> xr.Dataset:
    """`ds` with noisy training and validation labels, and the noise's sd per seed."""
    level = float(problem.get("noise", 0.0))
    if level == 0:
        return ds
    s, split = ds["s"].values.copy(), ds["split"].values
    test = split == "test"
    sd = np.array([level * np.sqrt(np.mean(s[i][test] ** 2)) for i in range(len(ds.seed))])
    for i, seed in enumerate(ds.seed.values.tolist()):
        for name in NOISY_SPLITS:
            rows = np.flatnonzero(split == name)
            draws = numpy_rng(seed, "label_noise", name).standard_normal((len(rows), s.shape[-1]))
            s[i, rows] += sd[i] * draws
    attrs = {**ds["s"].attrs, "label_noise": level}
    noisy = ds.assign(s=(ds["s"].dims, s, attrs))
    sd_attrs = {"long_name": "sd of the label noise (train and val labels)", "units": "1"}
    return noisy.assign(label_noise_sd=("seed", sd, sd_attrs))
