"""opscale: measure, fit and explain neural scaling laws in operator learning.

The package holds all the logic of the Snakemake workflow (``Snakefile``): problems and
their data, batched models and their training, result cubes, fits and figures.
Importing it is cheap; heavy libraries are imported by the modules that need them.
"""

from importlib import metadata

try:  # one version, pyproject.toml's, as installed (editable or not)
    __version__ = metadata.version("opscale")
except metadata.PackageNotFoundError:  # a source tree on sys.path, never installed
    __version__ = "unknown"
