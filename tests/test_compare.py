"""``opscale compare`` and ``opscale export`` on fitted synthetic studies."""

import sys

import pandas as pd
import pytest

from opscale import cli, compare, cube, fit
from opscale.tables import table
from tests.helpers import synthetic_cube

FAST = {"bootstrap": 60, "backtest_bootstrap": 0}


@pytest.fixture(scope="module")
def studies(tmp_path_factory):
    """Fitted study folders: two with alpha 0.3 (different noise), one with alpha 0.7."""
    root = tmp_path_factory.mktemp("results")
    planted = {"low": (0.3, 0), "low_again": (0.3, 1), "high": (0.7, 2)}
    for name, (alpha, rng_seed) in planted.items():
        folder = root / name
        cube.write(synthetic_cube(alpha=alpha, rng_seed=rng_seed), folder / "cube.nc")
        fit.fit_cube(folder / "cube.nc", folder / "fit.nc", folder / "fit.md", FAST)
    return root


def robust_verdicts(a, b) -> dict:
    matched, _, _ = compare.compare_fits(cube.read(a / "fit.nc"), cube.read(b / "fit.nc"))
    robust = matched[matched["law"] == "robust"]
    return dict(zip(robust["term"], robust["verdict"], strict=True))


def test_the_same_planted_exponents_are_indistinguishable(studies):
    verdicts = robust_verdicts(studies / "low", studies / "low_again")
    assert verdicts == {"log_N": "indistinguishable", "log_n": "indistinguishable"}


def test_planted_alphas_0_3_and_0_7_differ_on_n_params(studies):
    verdicts = robust_verdicts(studies / "low", studies / "high")
    assert verdicts["log_N"] == "different"
    assert verdicts["log_n"] == "indistinguishable"  # the same beta


def test_the_difference_interval_is_the_normal_approximation(studies):
    a, b = (cube.read(studies / name / "fit.nc") for name in ("low", "high"))
    matched, _, _ = compare.compare_fits(a, b)
    row = matched[(matched["law"] == "robust") & (matched["term"] == "log_N")].iloc[0]
    z = 1.959964  # the normal quantile of the fits' 95%
    se_a, se_b = ((r.ci_high - r.ci_low) / (2 * z) for r in (row.a, row.b))
    se = (se_a**2 + se_b**2) ** 0.5
    assert row.difference == pytest.approx(row.b.exponent - row.a.exponent)
    assert (row.low, row.high) == pytest.approx((row.difference - z * se, row.difference + z * se))


def test_not_identified_rows_are_not_compared_and_lone_rows_are_listed(studies, tmp_path):
    a = cube.read(studies / "low" / "fit.nc")
    rows = table(a, "row")
    first = rows.index[(rows["law"] == "robust") & (rows["term"] == "log_N")][0]
    b = a.copy(deep=True)
    b["identified"][first] = "no"
    b = b.drop_isel(row=[i for i in rows.index if rows.loc[i, "law"] == "data"])
    b.to_netcdf(tmp_path / "fit.nc")
    text = compare.compare_text(studies / "low", tmp_path / "fit.nc")
    line = next(x for x in text.splitlines() if "| robust | N (parameters)" in x)
    assert "not compared (B not identified)" in line
    assert "(no interval)" in line
    assert "only in A: all / data / n (training functions)" in text
    assert "only in B" not in text


def test_compare_prints_the_table_and_names_a_missing_fit(studies, tmp_path, capsys):
    assert cli.main(["compare", str(studies / "low"), str(studies / "high" / "fit.nc")]) == 0
    out = capsys.readouterr().out
    assert "95% interval by a normal approximation" in out
    assert "| all | robust | N (parameters) |" in out
    assert cli.main(["compare", str(studies / "low"), str(tmp_path)]) == 2
    assert str(tmp_path / "fit.nc") in capsys.readouterr().err


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_export_writes_the_cube_and_every_fit_table(studies, tmp_path, capsys, fmt):
    study = studies / "low"
    out = tmp_path / "export"
    assert cli.main(["export", str(study), "--format", fmt, "--out", str(out)]) == 0
    named = capsys.readouterr().out.split()
    read = pd.read_csv if fmt == "csv" else pd.read_parquet
    models = read(out / f"cube.{fmt}")
    ds = cube.read(study / "cube.nc")
    assert len(models) == ds["status"].size
    assert {"width", "n_train", "seed", "test_rel_l2", "n_params"} <= set(models.columns)
    fits = cube.read(study / "fit.nc")
    for name in ("row", "parameter", "comparison", "allocation"):
        path = out / f"fit_{name}.{fmt}"
        assert str(path) in named
        assert len(read(path)) == len(table(fits, name))


def test_export_puts_curves_in_their_own_file(tmp_path):
    ds = synthetic_cube(seeds=2)
    steps = [0, 10, 20]
    curve = ds["test_rel_l2"].expand_dims(step=steps, axis=-1).copy()
    ds = ds.assign(loss_curve=curve).assign_coords(step=steps)
    cube.write(ds, tmp_path / "cube.nc")
    written, absent = compare.export(tmp_path, "csv")
    assert absent == [tmp_path / "fit.nc"]
    assert {p.name for p in written} == {"cube.csv", "cube_loss_curve.csv"}
    assert len(pd.read_csv(tmp_path / "cube.csv")) == ds["status"].size
    assert "loss_curve" not in pd.read_csv(tmp_path / "cube.csv").columns
    assert len(pd.read_csv(tmp_path / "cube_loss_curve.csv")) == ds["status"].size * len(steps)


def test_export_without_pyarrow_says_so(studies, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # `import pyarrow` raises ImportError
    out = tmp_path / "export"
    assert cli.main(["export", str(studies / "low"), "--format", "parquet", "--out", str(out)]) == 2
    assert "pyarrow" in capsys.readouterr().err
    assert not out.exists()


def test_export_of_an_empty_folder_names_it(tmp_path, capsys):
    assert cli.main(["export", str(tmp_path)]) == 2
    assert str(tmp_path / "cube.nc") in capsys.readouterr().err


def test_two_groups_are_compared_by_name_and_an_unknown_group_is_named(studies):
    a, b = (cube.read(studies / name / "fit.nc") for name in ("low", "high"))
    group = table(a, "row")["group"].iloc[0]
    matched, only_a, only_b = compare.compare_fits(a, b, groups=(group, group))
    robust = matched[matched["law"] == "robust"].set_index("term")
    assert set(robust["group"]) == {f"{group} vs {group}"} and not only_a and not only_b
    assert robust.loc["log_N", "verdict"] == "different"  # planted 0.3 vs 0.7
    same, _, _ = compare.compare_fits(a, a, groups=(group, group))
    assert (same["difference"] == 0).all()
    with pytest.raises(ValueError, match=f"A has no group 'steps=1'; its groups: {group}"):
        compare.compare_fits(a, b, groups=("steps=1", group))


def test_compare_within_one_study_needs_groups(studies, capsys):
    group = table(cube.read(studies / "low" / "fit.nc"), "row")["group"].iloc[0]
    assert cli.main(["compare", str(studies / "low"), "--groups", group, group]) == 0
    assert "share their seeds" in capsys.readouterr().out
    assert cli.main(["compare", str(studies / "low")]) == 2
    assert "give study B, or --groups" in capsys.readouterr().err
    assert cli.main(["compare", str(studies / "low"), "--groups", "x", group]) == 2
    assert "A has no group 'x'" in capsys.readouterr().err
