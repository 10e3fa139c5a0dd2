"""phyloclr: contrastive embeddings of biological sequences with evolution as the augmentation."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("phyloclr")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
