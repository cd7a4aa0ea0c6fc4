"""``python -m RadiologyAICommonLib`` runs the ``radiologyai`` CLI (used by the Slicer worker)."""

import sys

from .cli import main

sys.exit(main())
