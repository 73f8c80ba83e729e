"""`python -m moseq`: the `moseq` command (see `moseq.cli`)."""

import sys

from moseq.cli import main

sys.exit(main())
