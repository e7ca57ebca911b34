"""``python -m circman5``: the same as the ``circman5`` command."""

from circman5.cli import main

raise SystemExit(main())
