"""``python -m server.cli``: how ``arena serve`` starts its API and worker processes."""

import os

from server.cli import main

if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
