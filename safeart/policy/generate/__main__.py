"""``python -m safeart.policy.generate [family ...]``: see :mod:`safeart.policy.generate`."""

import sys

from . import main

sys.exit(main())
