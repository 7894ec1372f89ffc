"""``python -m boxpromptiml COMMAND``: the same as ``bpiml COMMAND`` (what torchrun launches)."""

import sys

from .cli import main

sys.exit(main())
