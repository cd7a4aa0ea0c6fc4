"""RadiologyAI shared engine: errors, progress, image I/O, reports, CLI and worker process.

Importing this package is cheap and needs neither Slicer nor Qt; the MRML adapters
(`mrml`) and the Slicer dependency helper (`dependencies`) import `slicer` themselves.
"""

from .errors import RadiologyAIError
from .progress import ProgressCallback, no_progress, subprogress

__version__ = "0.1.0"

__all__ = ["RadiologyAIError", "ProgressCallback", "no_progress", "subprogress", "__version__"]
