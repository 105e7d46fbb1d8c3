"""`python -m checkpoint_base` runs the `checkpointers` command line."""

from __future__ import annotations

import sys

from ._cli import main

sys.exit(main())
