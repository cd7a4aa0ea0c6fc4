"""HipRadiomics engine: PyRadiomics extraction, feature selection, XGBoost classifier, DeLong statistics.

Pure cores (no ``slicer``, no ``qt``). Heavy packages (radiomics, xgboost, boruta,
scikit-learn) are imported by the modules that need them, never by this package.
"""
