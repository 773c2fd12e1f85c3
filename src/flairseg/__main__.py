"""``python -m flairseg`` (and ``torchrun ... -m flairseg train ...``) runs the command line."""

import sys

from flairseg.cli import main

sys.exit(main())
