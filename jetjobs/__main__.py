"""`python -m jetjobs`."""

import sys

from .entry import main

sys.exit(main())
