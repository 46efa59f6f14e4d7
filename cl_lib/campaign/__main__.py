"""``python -m cl_lib.campaign``: see :mod:`cl_lib.campaign`."""

import sys

from cl_lib.campaign import main

sys.exit(main())
