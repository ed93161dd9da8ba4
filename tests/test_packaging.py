"""Set-up promises: it installs and runs like any Python package and Snakemake workflow.

The wheel works on its own (package data, non-editable, outside the checkout); the
dependencies are ranges with one exact lock; a plain ``snakemake`` at the repository root
loads the default profile and takes ``--config`` values as YAML; the conda environment
installs this checkout from wherever Snakemake copies its file.
"""

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from importlib import metadata

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from opscale import config as cfg
from opscale import cube, grid
from tests.helpers import REPO, SNAKEMAKE, TINY, TINY_FILE, synthetic_cube, write_config

PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def _lock() -> dict[str, str]:
    """constraints.txt as {canonical name: version}."""
    lines = (REPO / "constraints.txt").read_text().splitlines()
    pins = [line.split("==") for line in lines if line and not line.startswith("#")]
    assert all(len(pin) == 2 for pin in pins), "every line of the lock is name==version"
    return {canonicalize_name(name): version for name, version in pins}


def _requirements(extras=("dev", "slurm")) -> list[Requirement]:
    """opscale's own requirements with `extras` (a self-reference opscale[x] expanded)."""
    requirements, todo, seen = [], list(extras), set()
    requirements += map(Requirement, PROJECT["dependencies"])
    while todo:
        extra = todo.pop()
        seen.add(extra)
        for req in map(Requirement, PROJECT["optional-dependencies"][extra]):
            if req.name == "opscale":
                todo += [e for e in req.extras if e not in seen]
            else:
                requirements.append(req)
    return requirements


def _closure(requirements) -> dict[str, str]:
    """Every installed distribution the requirements need, transitively: {name: version}."""
    found, seen = {}, set()
    todo = [(req, {""}) for req in requirements]  # (requirement, extras of who asks for it)
    while todo:
        req, asking = todo.pop()
        if req.marker and not any(req.marker.evaluate({"extra": e}) for e in asking):
            continue
        name, extras = canonicalize_name(req.name), frozenset(req.extras)
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        dist = metadata.distribution(name)  # PackageNotFoundError: not installed
        found[name] = dist.version
        todo += [(Requirement(r), extras | {""}) for r in dist.requires or []]
    return found


def _public(version: str) -> str:
    return Version(version).public  # 2.13.0+cpu -> 2.13.0


# Dependencies: ranges in pyproject.toml, one exact lock (constraints.txt).


def test_dependencies_are_ranges_and_the_slurm_plugin_an_extra():
    requirements = _requirements()
    assert all(">=" in str(req.specifier) for req in requirements), requirements
    assert not [req for req in requirements if "==" in str(req.specifier)]
    names = {canonicalize_name(Requirement(r).name) for r in PROJECT["dependencies"]}
    assert "snakemake-executor-plugin-slurm" not in names
    slurm = PROJECT["optional-dependencies"]["slurm"]
    assert [Requirement(r).name for r in slurm] == ["snakemake-executor-plugin-slurm"]
    assert "opscale[slurm,parquet]" in PROJECT["optional-dependencies"]["dev"]  # make test


def test_the_lock_pins_every_dependency_inside_its_range():
    lock = _lock()
    assert lock["torch"] == "2.13.0"  # any other pulls a multi-GB CUDA build on CPU hosts
    for req in _requirements():
        version = lock[canonicalize_name(req.name)]
        assert req.specifier.contains(version), f"{req.name}=={version} outside {req}"


def test_the_lock_covers_the_whole_installed_dependency_closure():
    """Every package make installs (direct or transitive) is locked, at its installed version."""
    lock, closure = _lock(), _closure(_requirements())
    assert {name for name in closure if name not in lock} == set()
    stale = {n: (v, lock[n]) for n, v in closure.items() if _public(v) != lock[n]}
    assert stale == {}, "installed != locked: run `make install` (or `make lock`)"


def test_make_installs_from_the_lock():
    makefile = (REPO / "Makefile").read_text()
    assert "--constraint constraints.txt --editable '.[dev]'" in makefile
    assert "$(VENV)/.installed: pyproject.toml constraints.txt" in makefile


def test_license_and_citation():
    assert PROJECT["license"] == "MIT"
    text = (REPO / "LICENSE").read_text()
    assert text.startswith("MIT License") and "the opscale authors" in text
    citation = yaml.safe_load((REPO / "CITATION.cff").read_text())
    assert citation["cff-version"] == "1.2.0"
    assert {"message", "title", "authors"} <= set(citation)
    assert citation["version"] == PROJECT["version"] and citation["license"] == "MIT"


def test_readme_starts_with_the_two_commands():
    text = (REPO / "README.md").read_text()
    first_block = text.split("```", 2)[1]
    assert [line for line in first_block.splitlines()[1:] if line.strip()] == [
        "make run",
        "make test",
    ]


# The wheel: package data found through the package, installed non-editable.


def test_schema_and_default_study_have_one_copy_in_the_package():
    assert cfg.SCHEMA_PATH.parent == cfg.PACKAGE_DATA and cfg.SCHEMA_PATH.is_file()
    for link, target in [
        (REPO / "workflow" / "schemas" / "config.schema.yaml", cfg.SCHEMA_PATH),
        (REPO / "config" / "config.yaml", cfg.DEFAULT_CONFIG),
    ]:
        assert link.is_symlink() and link.resolve() == target.resolve()


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """The wheel, built offline from a copy of the sources (the checkout stays clean)."""
    root = tmp_path_factory.mktemp("wheel")
    tree = root / "tree"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    shutil.copytree(REPO / "src", tree / "src", ignore=ignore)  # follows links
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO / name, tree / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    build = ["wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q", "-w", "dist"]
    subprocess.run([*pip, *build, str(tree)], cwd=root, check=True, capture_output=True)
    (path,) = (root / "dist").glob("opscale-*.whl")
    return path


def test_the_wheel_ships_the_schema_the_default_study_and_the_license(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert {"opscale/data/config.schema.yaml", "opscale/data/config.yaml"} <= set(names)
    assert any(name.endswith("licenses/LICENSE") for name in names)


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory):
    """A fresh venv with the wheel installed (not editable); its dependencies are this
    environment's, seen through a .pth line (whose folder's own .pth files, the editable
    install's among them, are not read)."""
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    paths = dict.fromkeys(sysconfig.get_paths()[key] for key in ("purelib", "platlib"))
    (venv / site.removeprefix(str(venv) + "/") / "deps.pth").write_text("\n".join(paths))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--python", str(python)]
    subprocess.run([*pip, "install", "--no-deps", "--no-index", "-q", str(wheel)], check=True)
    return venv


def test_the_installed_wheel_runs_version_status_and_fit_outside_the_checkout(installed, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}

    def run(*args):
        return subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True)

    where = run(installed / "bin" / "python", "-c", "import opscale; print(opscale.__file__)")
    assert where.stdout.startswith(str(installed)), where  # the wheel, not the checkout
    opscale = installed / "bin" / "opscale"
    assert run(opscale, "--version").stdout == f"opscale {PROJECT['version']}\n"

    write_config(tmp_path / "study.yaml", TINY)
    status = run(opscale, "status", "--config", "study.yaml")
    assert status.returncode == 1, status.stderr  # 1: points missing; never a traceback
    assert status.stdout.startswith("study tiny (results/tiny): 4 points: 0 done")

    cube.write(synthetic_cube(widths=(4, 8, 16), n_train=(16, 32, 64), seeds=3), tmp_path / "c.nc")
    fit = run(opscale, "fit", "c.nc", "--bootstrap", "20", "--workers", "1")
    assert fit.returncode == 0, fit.stderr
    assert "| synthetic | N (parameters) |" in fit.stdout
    assert (tmp_path / "fit.nc").is_file() and (tmp_path / "fit.md").is_file()


# Snakemake conventions: a plain `snakemake` at the repository root.


def _snakemake_at_root(*args):
    """`snakemake ARGS` run at the repository root, as a user types it (a dry run)."""
    command = [str(SNAKEMAKE), "--cores", "2", "--dry-run", *args]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)


def test_a_plain_snakemake_at_the_root_loads_the_default_profile():
    result = _snakemake_at_root()
    assert result.returncode == 0, result.stderr
    line = "Using workflow specific profile profiles/default for setting default command line"
    assert line in result.stderr


def test_config_overrides_are_read_as_yaml():
    overrides = ["study=override-check", "seeds=[0]", "train={steps: 10, lr: 0.01}"]
    result = _snakemake_at_root("--config", *overrides)
    assert result.returncode == 0, result.stderr
    expected = cfg.load(cfg.DEFAULT_CONFIG)
    expected.update(study="override-check", seeds=[0])
    expected["train"].update(steps=10, lr=0.01)
    ids = [point.id for point in grid.points(cfg.validate_study(expected))]
    assert ids and all(f"results/override-check/points/{i}.nc" in result.stdout for i in ids)


def test_a_bad_config_override_is_named_as_such():
    result = _snakemake_at_root("--config", "train={steps: -1}")
    assert result.returncode != 0
    out = result.stdout + result.stderr
    assert "(config/config.yaml, --config train={steps: -1})" in out
    assert "train.steps: -1 is less than the minimum of 1" in out


def test_the_tiny_study_is_the_test_configuration():
    assert yaml.safe_load(TINY_FILE.read_text()) == TINY and TINY["study"] == "tiny"
    cfg.load(TINY_FILE)


# The conda environment: where its pip lines point once Snakemake has copied the file.

STAND_IN_CONDA = '''#!{python}
"""Stand-in for conda: answers Snakemake's checks; `env create` resolves the pip lines
as conda's pip installer runs them (a requirements file beside the env file, pip in that
folder) with pip's own parser, and reports where they point."""
import json, os, sys
from pathlib import Path

import yaml

args = sys.argv[1:]
if args == ["--version"]:
    print("conda 24.7.1")
elif args[:2] == ["info", "--json"]:
    print(json.dumps({{"conda_prefix": os.environ["STAND_IN_PREFIX"], "platform": "linux-64"}}))
elif args[:2] == ["config", "--get"]:
    print(json.dumps({{"get": {{"channel_priority": "strict"}}}}))
elif args[:2] == ["env", "create"]:
    env_file = Path(args[args.index("--file") + 1]).resolve()
    spec = yaml.safe_load(env_file.read_text())
    lines = next(d["pip"] for d in spec["dependencies"] if isinstance(d, dict))
    requirements = env_file.parent / "condaenv.stand-in.requirements.txt"
    requirements.write_text("\\n".join(lines))
    os.chdir(env_file.parent)
    from pip._internal.network.session import PipSession
    from pip._internal.req.constructors import install_req_from_parsed_requirement
    from pip._internal.req.req_file import parse_requirements

    report = {{"env_file": str(env_file), "editable": [], "constraints": []}}
    for parsed in parse_requirements(str(requirements), session=PipSession()):
        if parsed.constraint:
            report["constraints"].append(parsed.requirement)
        elif parsed.is_editable:
            report["editable"].append(install_req_from_parsed_requirement(parsed).link.file_path)
    Path(os.environ["STAND_IN_REPORT"]).write_text(json.dumps(report))
    Path(args[args.index("--prefix") + 1], "bin").mkdir(parents=True)
elif args[0] != "clean":
    sys.exit(f"stand-in conda: unexpected {{args}}")
'''


def test_conda_env_pins_the_locked_versions_of_the_direct_dependencies():
    env = yaml.safe_load((REPO / "envs" / "opscale.yaml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    lock = _lock()
    direct = {Requirement(r).name for r in PROJECT["dependencies"]}
    assert {p for p in pip if not p.startswith("-")} == {
        f"{name}=={lock[canonicalize_name(name)]}" for name in direct
    }


def test_conda_env_installs_this_checkout_from_where_snakemake_copies_it(tmp_path):
    """Snakemake's real env creation (--sdm conda) with a stand-in conda on PATH."""
    import json

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "conda").write_text(STAND_IN_CONDA.format(python=sys.executable))
    (bin_dir / "conda").chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}")
    env.update(STAND_IN_PREFIX=str(tmp_path / "conda"), STAND_IN_REPORT=str(tmp_path / "r"))
    env.pop("OPSCALE_CHECKOUT", None)  # the Snakefile sets it
    workdir = tmp_path / "work"
    command = [str(SNAKEMAKE), "-s", str(REPO / "Snakefile"), "-d", str(workdir)]
    command += ["--cores", "1", "--sdm", "conda", "--conda-create-envs-only"]
    command += ["--configfile", str(TINY_FILE)]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((tmp_path / "r").read_text())
    copy = report["env_file"]
    assert re.fullmatch(re.escape(str(workdir / ".snakemake" / "conda")) + r"/\w+\.yaml", copy)
    assert report["editable"] == [str(REPO)]
    assert "torch==2.13.0" in report["constraints"]
    # what the old relative `--editable ..` named: the copy's parent folder, not the checkout
    assert os.path.abspath(os.path.join(os.path.dirname(copy), "..")) != str(REPO)
