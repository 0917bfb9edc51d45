"""`python -m osvgdb` is the `osvgdb` command (the tests use it this way)."""

import sys

from osvgdb.cli import main

sys.exit(main())
