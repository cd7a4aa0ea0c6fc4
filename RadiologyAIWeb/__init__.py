"""RadiologyAIWeb: the browser front-end of RadiologyAI (``radiologyai web``), on trame and trame-slicer.

A fourth way into the same engine (ARCHITECTURE.md, "Front-ends"): the panels call the modules' logic classes
and run long jobs through ``RadiologyAICommonLib.worker``; nothing is computed here. ``viewer.py`` is the only
module that imports trame-slicer.
"""
