"""`python -m finetune --dialogues PATH --out DIR ...`: the same as `recochat finetune ...`."""

import sys

from recochat.cli import main

raise SystemExit(main(["finetune", *sys.argv[1:]]))
