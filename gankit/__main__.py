"""`python -m gankit ...`: the `gankit` command, also what `torchrun -m gankit train ...` starts."""

import sys

from .cli import main

sys.exit(main())
