"""``python -m graphpro_ext.graphpro``: same as the ``graphpro`` console script."""

import sys

from .entry import main

sys.exit(main())
