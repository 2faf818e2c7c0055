"""`python -m gptlab ...`: the same as the `gptlab` command (see gptlab.cli)."""

import sys

from gptlab.cli import main

sys.exit(main())
