"""phyloclr: contrastive embeddings of biological sequences with evolution as the augmentation."""

import os as _os
from importlib.metadata import PackageNotFoundError, version

# oneDNN (torch's CPU kernels) caches one compiled primitive per input shape, 1,024 by default;
# with variable sequence lengths that cache grew to gigabytes while embedding (peak RSS 3 GB at
# 100k sequences). A small cache keeps memory flat at the same speed; a user's setting wins.
_os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "16")

try:
    __version__ = version("phyloclr")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
