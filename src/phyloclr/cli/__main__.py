"""``python -m phyloclr.cli`` (and ``torchrun -m phyloclr.cli``)."""

from phyloclr.cli import main

main()
