"""SalivarySeg cores: salivary-gland tumour segmentation (V-Net) and benign/malignant classification
(ResNet-50 on 2D slices) on non-contrast CT, after Ugga, Cuocolo et al., IEEE JBHI 2021.

Modules: ``dataset`` (folder format, validation, split), ``preprocessing`` (2 mm, HU clip, crop/pad),
``augmentation``, ``networks``, ``slices`` (classifier inputs), ``training``, ``inference``,
``metrics``, ``evaluation``, ``model_package``, ``synthetic``, ``runtime``; ``logic`` (MRML) and ``cli``.
Importing the package is cheap: torch and MONAI load only in the modules that need them.
"""
