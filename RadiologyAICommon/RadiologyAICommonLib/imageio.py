"""Image input and validation: any file SimpleITK reads, or a folder holding a DICOM series.

Everything returns SimpleITK images, which carry spacing, origin and direction (LPS), so
the cores never lose geometry. Writing goes through :mod:`.atomic`.
"""

from __future__ import annotations

import contextlib
import locale
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from .atomic import atomic_path
from .errors import RadiologyAIError

# DICOM tags read from a series' first file (SimpleITK "gggg|eeee" keys).
TAG_CTDIVOL = "0018|9345"
TAG_KERNEL = "0018|1210"
TAG_SERIES_DESCRIPTION = "0008|103e"
TAG_MODALITY = "0008|0060"


@dataclass
class DicomSeries:
    """One DICOM series found in a folder, with the tags the studies need."""

    series_uid: str
    files: list[str]
    description: str = ""
    modality: str = ""
    kernel: str = ""
    ctdivol_mgy: float | None = None
    folder: str = ""
    extra: dict[str, str] = field(default_factory=dict)


@contextlib.contextmanager
def _keep_locale():
    """GDCM switches the C locale to "C" while reading DICOM and leaves it there, which turns Python's
    default text encoding into ASCII for the rest of the process; put the caller's locale back."""
    saved = locale.setlocale(locale.LC_ALL)
    try:
        yield
    finally:
        locale.setlocale(locale.LC_ALL, saved)


def _tag(reader: sitk.ImageFileReader, key: str) -> str:
    return reader.GetMetaData(key).strip() if reader.HasMetaDataKey(key) else ""


def list_dicom_series(folder: str | os.PathLike) -> list[DicomSeries]:
    """All DICOM series under ``folder`` (recursively), each with description, kernel and CTDIvol."""
    folder = Path(folder)
    if not folder.is_dir():
        raise RadiologyAIError(f"{folder}: not a folder")
    series: list[DicomSeries] = []
    with _keep_locale():
        for directory, uid, files, reader in _scan_series(folder):
            ctdi = _tag(reader, TAG_CTDIVOL)
            try:
                ctdivol = float(ctdi) if ctdi else None
            except ValueError:
                ctdivol = None
            series.append(
                DicomSeries(
                    series_uid=uid,
                    files=files,
                    description=_tag(reader, TAG_SERIES_DESCRIPTION),
                    modality=_tag(reader, TAG_MODALITY),
                    kernel=_tag(reader, TAG_KERNEL).replace("\\", " "),
                    ctdivol_mgy=ctdivol,
                    folder=directory,
                )
            )
    return series


def _scan_series(folder: Path):
    """Yield (folder, series UID, sorted files, reader with the first file's tags) for each series."""
    for directory in sorted({str(p.parent) for p in folder.rglob("*") if p.is_file()} | {str(folder)}):
        for uid in sitk.ImageSeriesReader.GetGDCMSeriesIDs(directory) or ():
            files = list(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(directory, uid))
            reader = sitk.ImageFileReader()
            reader.SetFileName(files[0])
            reader.LoadPrivateTagsOn()
            try:
                reader.ReadImageInformation()
            except RuntimeError as exc:
                raise RadiologyAIError(f"{files[0]}: unreadable DICOM file ({_first_line(exc)})") from None
            yield directory, uid, files, reader


def read_dicom_series(series: DicomSeries) -> sitk.Image:
    """Read one :class:`DicomSeries` into a 3D image (HU for CT: rescale slope/intercept applied)."""
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(series.files)
    try:
        with _keep_locale():
            image = reader.Execute()
    except RuntimeError as exc:
        raise RadiologyAIError(f"{series.folder}: cannot read DICOM series ({_first_line(exc)})") from None
    return image


def read_image(path: str | os.PathLike, what: str = "image") -> sitk.Image:
    """Read an image file, or the single DICOM series in a folder, as a SimpleITK image.

    Raises :class:`RadiologyAIError` naming the path when it is missing, unreadable, or
    a folder with no or several DICOM series.
    """
    path = Path(path)
    if not path.exists():
        raise RadiologyAIError(f"{what} {path}: no such file or folder")
    if path.is_dir():
        found = list_dicom_series(path)
        if not found:
            raise RadiologyAIError(f"{what} {path}: the folder holds no DICOM series")
        if len(found) > 1:
            names = ", ".join(s.description or s.series_uid for s in found)
            raise RadiologyAIError(f"{what} {path}: the folder holds {len(found)} DICOM series ({names}); give one")
        return read_dicom_series(found[0])
    try:
        with _keep_locale():
            return sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise RadiologyAIError(f"{what} {path}: not an image SimpleITK can read ({_first_line(exc)})") from None


def validate_scalar_volume(image: sitk.Image, what: str = "image") -> sitk.Image:
    """Check that ``image`` is a finite 3D scalar volume with positive spacing; return it."""
    if image.GetDimension() != 3:
        raise RadiologyAIError(f"{what}: expected a 3D volume, got a {image.GetDimension()}D image")
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise RadiologyAIError(
            f"{what}: expected a scalar (grey-level) volume, got {image.GetNumberOfComponentsPerPixel()} components per voxel"
        )
    if min(image.GetSize()) < 1 or image.GetNumberOfPixels() < 2:
        raise RadiologyAIError(f"{what}: the volume is empty (size {image.GetSize()})")
    if any(not np.isfinite(s) or s <= 0 for s in image.GetSpacing()):
        raise RadiologyAIError(f"{what}: voxel spacing must be positive, got {image.GetSpacing()}")
    array = sitk.GetArrayViewFromImage(image)
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        bad = int((~np.isfinite(array)).sum())
        raise RadiologyAIError(f"{what}: {bad} voxels are NaN or infinite")
    return image


def read_volume(path: str | os.PathLike, what: str = "image") -> sitk.Image:
    """:func:`read_image` followed by :func:`validate_scalar_volume`."""
    return validate_scalar_volume(read_image(path, what), f"{what} {path}")


def same_geometry(a: sitk.Image, b: sitk.Image, tolerance: float = 1e-4) -> bool:
    """True when two images share size, spacing, origin and direction (within ``tolerance``)."""
    return (
        a.GetSize() == b.GetSize()
        and np.allclose(a.GetSpacing(), b.GetSpacing(), atol=tolerance)
        and np.allclose(a.GetOrigin(), b.GetOrigin(), atol=tolerance * max(1.0, max(a.GetSpacing())))
        and np.allclose(a.GetDirection(), b.GetDirection(), atol=tolerance)
    )


def write_image(image: sitk.Image, path: str | os.PathLike, compress: bool = True) -> Path:
    """Write ``image`` atomically: to a temporary name beside ``path``, then rename."""
    path = Path(path)
    with atomic_path(path) as tmp, _keep_locale():
        sitk.WriteImage(image, str(tmp), compress)
    return path


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    # ITK messages put the useful sentence last ("... Description: ...").
    for line in reversed(text):
        if line.strip():
            return line.strip().removeprefix("Description: ")
    return type(exc).__name__
