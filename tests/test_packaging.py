"""Set-up promises: pins agree everywhere, the README starts with the two commands."""

import tomllib

import yaml

from tests.helpers import REPO


def _pyproject_pins():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return set(project["dependencies"])


def test_conda_env_mirrors_the_pyproject_pins():
    env = yaml.safe_load((REPO / "envs" / "opscale.yaml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert {p for p in pip if not p.startswith("--")} == _pyproject_pins()


def test_every_dependency_is_pinned_exactly():
    assert all("==" in pin for pin in _pyproject_pins())
    assert "torch==2.13.0" in _pyproject_pins()


def test_readme_starts_with_the_two_commands():
    text = (REPO / "README.md").read_text()
    first_block = text.split("```", 2)[1]
    assert [line for line in first_block.splitlines()[1:] if line.strip()] == [
        "make run",
        "make test",
    ]
