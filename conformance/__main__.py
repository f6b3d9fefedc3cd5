"""`python -m conformance ...`: the command line, for a checkout run from its own folder (the
deployed monitor's units run the project's source this way, from its venv)."""

import sys

from conformance.cli import main

sys.exit(main())
