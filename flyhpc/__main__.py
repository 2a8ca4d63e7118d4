"""`python -m flyhpc`: the same command-line interface as the `flyhpc` console script."""

from flyhpc.cli import main

main()
