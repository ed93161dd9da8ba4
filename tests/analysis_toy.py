"""A tiny analysis for tests/test_analyses.py: the median error of each width."""

import matplotlib.pyplot as plt

from opscale.tables import markdown_table as _md
from opscale.tables import table


def analyse(cube, settings):
    frame = cube["test_rel_l2"].median(["n_train", "seed"]).to_dataframe().reset_index()
    return {"median": frame[["width", "test_rel_l2"]]}


def markdown(fits):
    rows = table(fits, "toy_median")
    return "## Toy\n\n" + _md(["width", "median"], rows.values.tolist())


def toy_figure(cube, fits):
    figure, ax = plt.subplots()
    rows = table(fits, "toy_median")
    ax.plot(rows["width"], rows["test_rel_l2"])
    return figure
