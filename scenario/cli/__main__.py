"""``python -m scenario.cli``: the same as the ``scenario`` command."""

from __future__ import annotations

import sys

from scenario.cli.main import main

sys.exit(main())
