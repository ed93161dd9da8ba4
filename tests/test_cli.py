"""The ``opscale`` command line on real files."""

import subprocess
import sys

import pytest

from opscale import cli, cube
from tests.helpers import synthetic_cube


def test_fit_writes_the_fit_beside_the_cube_and_prints_the_table(tmp_path, capsys):
    path = tmp_path / "cube.nc"
    cube.write(synthetic_cube(), path)
    assert cli.main(["fit", str(path)]) == 0
    table = (tmp_path / "fit.md").read_text()
    assert "N (parameters)" in table
    assert table in capsys.readouterr().out
    assert "exponent" in cube.read(tmp_path / "fit.nc")


def test_fit_of_a_missing_cube_names_it(tmp_path, capsys):
    assert cli.main(["fit", str(tmp_path / "nope.nc")]) == 2
    assert "nope.nc" in capsys.readouterr().err


def test_the_installed_script_lists_its_commands():
    script = [sys.executable, "-m", "opscale.cli", "--help"]
    out = subprocess.run(script, capture_output=True, text=True, check=True).stdout
    assert "fit" in out


def test_version_is_the_installed_distributions(capsys):
    from importlib.metadata import version

    with pytest.raises(SystemExit) as exit_:
        cli.main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out == f"opscale {version('opscale')}\n"


def test_fit_reads_a_long_format_table(tmp_path, capsys):
    from tests.helpers import planted_table

    frame = planted_table(rows=120, rng_seed=0)
    frame["seed"] = 0
    frame.to_csv(tmp_path / "runs.csv", index=False)
    frame.to_parquet(tmp_path / "runs.parquet")
    for name in ("runs.csv", "runs.parquet"):
        out = tmp_path / name.replace(".", "_")
        args = ["fit", str(tmp_path / name), "--size", "params", "--data", "samples"]
        args += ["--error", "loss", "--seed", "seed", "--bootstrap", "20", "--out", str(out)]
        assert cli.main(args) == 0
        assert {p.name for p in out.iterdir()} == {"fit.nc", "fit.md", "exponents.csv"}
        assert "log(loss)" in capsys.readouterr().out


def test_fit_of_a_table_names_a_missing_column(tmp_path, capsys):
    from tests.helpers import planted_table

    planted_table(rows=20).to_csv(tmp_path / "runs.csv", index=False)
    args = ["fit", str(tmp_path / "runs.csv"), "--size", "params", "--data", "n"]
    assert cli.main([*args, "--error", "loss"]) == 2
    assert "no column 'n'" in capsys.readouterr().err
    assert cli.main(args) == 2
    assert "missing --error" in capsys.readouterr().err
