"""``python -m drivestack.cli <verb> ...``: the same as the ``drivestack`` command."""

import sys

from drivestack.cli import main

sys.exit(main())
