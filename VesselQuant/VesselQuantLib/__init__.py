"""VesselQuant: graph-cut lung-vessel segmentation and per-radius quantification on chest CT.

Pure cores (numpy / SciPy / SimpleITK / scikit-image / PyMaxflow, no Slicer):
``pipeline.run_vessel_quant`` is the entry point; ``logic.VesselQuantLogic`` adapts it to MRML
and ``cli`` provides ``radiologyai vessels``.
"""
