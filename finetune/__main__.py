"""`python -m finetune --dialogues PATH --out DIR ...`: same as `recochat finetune`."""

from finetune.cli import main

raise SystemExit(main())
