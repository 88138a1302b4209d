"""`python -m agent` = `flowact-agent`."""

import sys

from agent.cli import main

sys.exit(main())
