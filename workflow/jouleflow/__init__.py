"""jouleflow: reproducible energy benchmarks for generative-AI inference."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("jouleflow")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.1.0"
