"""The ``opscale`` command line on real files."""

import subprocess
import sys

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
