"""``python -m simulators``: the same as the ``circman5-sim`` command."""

from __future__ import annotations

import sys

from simulators.cli import main

if __name__ == "__main__":
    sys.exit(main())
