"""`python -m recochat ...`: the same as the `recochat` console script."""

from recochat.cli import main

raise SystemExit(main())
