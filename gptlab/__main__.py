"""`python -m gptlab ...`: the same as the `gptlab` command (see gptlab.cli).

Run from the folder that holds a clone named `gptlab/` (what `git clone .../gptlab` makes), Python
finds that folder first and takes it for a namespace package `gptlab` (it has no __init__.py);
an editable install then still finds this file, but not the package's names. This file belongs to
the real package, so it drops the impostor and puts its own checkout first.
"""

import sys
from pathlib import Path

if getattr(sys.modules.get("gptlab"), "__file__", None) is None:  # a namespace package (or run as a plain script)
    sys.modules.pop("gptlab", None)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gptlab.cli import main  # noqa: E402  (after the repair above)

sys.exit(main())
