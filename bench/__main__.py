"""`python -m bench`: what `bench/run` runs (see bench/cli.py)."""

import sys

from bench.cli import main

sys.exit(main())
