"""The library's version, read from its installed metadata: pyproject.toml is its one owner."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("rdrec-hf")
except PackageNotFoundError:  # a source tree on sys.path that was never installed
    __version__ = "0+unknown"
