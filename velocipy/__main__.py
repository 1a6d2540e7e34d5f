"""`python -m velocipy run MODULE:APP`: the same command as the `velocipy` console script."""

from __future__ import annotations

import sys

from velocipy.cli import main

sys.exit(main())
