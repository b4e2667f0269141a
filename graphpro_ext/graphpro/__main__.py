"""``python -m graphpro_ext.graphpro``: same as the ``graphpro`` console script."""

import sys

from .cli import main

sys.exit(main())
