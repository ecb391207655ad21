"""`python -m fl_privacy.report PATH [--out DIR] [--metric KEY] [--color KEY]` (= `fl-privacy report`)."""

import sys

from fl_privacy.cli.commands import main

sys.exit(main(["report", *sys.argv[1:]]))
