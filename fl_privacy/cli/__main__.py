"""`python -m fl_privacy.cli COMMAND ...`."""

import sys

from fl_privacy.cli.commands import main

sys.exit(main())
