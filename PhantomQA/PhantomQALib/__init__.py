"""PhantomQA: CT dose x reconstruction study on a (3D-printed or simulated) lung-vessel phantom.

Cores (no Slicer, no Qt):

- :mod:`.study_phantom` - the parametric branching lung-vessel phantom (segments, materials, holder);
- :mod:`.rasterize` - any design (parametric, label + radius maps, surface model) on a scan grid;
- :mod:`.designio` - design files: save/load, label + radius maps, STL/OBJ/VTK surfaces;
- :mod:`.recon` - reconstruction models (FBP-like, IR-like, DL-like) with their calibrated constants;
- :mod:`.simulate` - the fast image-domain acquisition simulator;
- :mod:`.physical` - the physical option (radon, Poisson sinogram noise, FBP / SART);
- :mod:`.acquisitions` - manifest CSV and DICOM-folder ingestion;
- :mod:`.registration` - rigid registration of the design to a scan;
- :mod:`.measure` - per-design-radius MPV, IQR, detection rate, radius error;
- :mod:`.study` - the study runner (parallel executor over acquisitions);
- :mod:`.aggregate`, :mod:`.published`, :mod:`.reporting` - mean +- SD tables, the published
  figures, report.html.
"""
