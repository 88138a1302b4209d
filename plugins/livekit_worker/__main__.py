"""`python -m plugins.livekit_worker --config worker.yaml`."""

import sys

from plugins.livekit_worker.cli import main

if __name__ == "__main__":
    sys.exit(main())
