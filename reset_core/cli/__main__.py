"""``python -m reset_core.cli``: the ``reset-studio`` command without the console script."""

import sys

from reset_core.cli import main

if __name__ == "__main__":  # importing this module (e.g. to check its imports) runs nothing
    sys.exit(main())
