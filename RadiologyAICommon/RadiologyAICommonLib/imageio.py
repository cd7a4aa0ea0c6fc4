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
from .memory import check_memory

# Bytes per voxel component of SimpleITK's pixel types (for the memory check before reading).
_NUMPY_TYPES = {
    getattr(sitk, f"sitk{n}"): t
    for n, t in (
        ("UInt8", np.uint8),
        ("Int8", np.int8),
        ("UInt16", np.uint16),
        ("Int16", np.int16),
        ("UInt32", np.uint32),
        ("Int32", np.int32),
        ("UInt64", np.uint64),
        ("Int64", np.int64),
        ("Float32", np.float32),
        ("Float64", np.float64),
        ("VectorUInt8", np.uint8),
        ("VectorInt16", np.int16),
        ("VectorFloat32", np.float32),
        ("VectorFloat64", np.float64),
    )
}

# DICOM tags read from a series' first file (SimpleITK "gggg|eeee" keys).
TAG_CTDIVOL = "0018|9345"
TAG_KERNEL = "0018|1210"
TAG_SERIES_DESCRIPTION = "0008|103e"
TAG_MODALITY = "0008|0060"
TAG_POSITION = "0020|0032"
TAG_ORIENTATION = "0020|0037"
# Slice gaps may differ by this fraction of the median gap (rounding in the written positions) and no more.
SLICE_GAP_TOLERANCE = 0.05


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


def _looks_like_dicom(path: Path) -> bool:
    """A DICOM Part 10 file: 128 bytes of preamble, then 'DICM'."""
    try:
        with open(path, "rb") as f:
            f.seek(128)
            return f.read(4) == b"DICM"
    except OSError:
        return False


def check_no_skipped_files(folder: str | os.PathLike, series: list[DicomSeries]) -> None:
    """Refuse a folder holding a DICOM file that GDCM could not place in any series (damaged or truncated)."""
    listed = {os.path.realpath(f) for s in series for f in s.files}
    for path in sorted(Path(folder).rglob("*")):
        if (
            path.is_file()
            and os.path.realpath(path) not in listed
            and path.name != "DICOMDIR"
            and _looks_like_dicom(path)
        ):
            raise RadiologyAIError(
                f"{path}: a DICOM file that cannot be read as part of any series (damaged or "
                "truncated?); remove it or replace it"
            )


def check_slice_spacing(series: DicomSeries) -> None:
    """Refuse a series whose slices are not evenly spaced (a missing or duplicated slice) or whose header is damaged."""
    positions = []
    normal = None
    with _keep_locale():
        for name in series.files:
            reader = sitk.ImageFileReader()
            reader.SetFileName(name)
            try:
                reader.ReadImageInformation()
            except RuntimeError as exc:
                raise RadiologyAIError(f"{name}: unreadable DICOM file ({_first_line(exc)})") from None
            position, orientation = _tag(reader, TAG_POSITION), _tag(reader, TAG_ORIENTATION)
            if not position or not orientation:
                return  # no patient geometry (secondary capture, a single frame): nothing to compare
            try:
                if normal is None:
                    row_col = np.array([float(v) for v in orientation.split("\\")]).reshape(2, 3)
                    normal = np.cross(row_col[0], row_col[1])
                positions.append((float(np.dot([float(v) for v in position.split("\\")], normal)), name))
            except ValueError:
                raise RadiologyAIError(f"{name}: damaged ImagePositionPatient / ImageOrientationPatient") from None
    if len(positions) < 3:
        return
    positions.sort()
    gaps = np.diff([p for p, _ in positions])
    median = float(np.median(gaps))
    if median <= 0:
        raise RadiologyAIError(f"{series.folder}: several slices share one position (duplicated slices?)")
    bad = np.flatnonzero(np.abs(gaps - median) > SLICE_GAP_TOLERANCE * median)
    if len(bad):
        i = int(bad[0])
        kind = "missing" if gaps[i] > median else "extra or duplicated"
        raise RadiologyAIError(
            f"{series.folder}: slices are not evenly spaced: {gaps[i]:.3g} mm between {Path(positions[i][1]).name} and "
            f"{Path(positions[i + 1][1]).name} where the series has {median:.3g} mm (a {kind} slice?)"
        )


def read_dicom_series(series: DicomSeries) -> sitk.Image:
    """Read one :class:`DicomSeries` into a 3D image (HU for CT: rescale slope/intercept applied).

    The slices must be evenly spaced (:func:`check_slice_spacing`): a missing slice would
    otherwise be averaged into the spacing and every length along the axis be wrong.
    """
    check_slice_spacing(series)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(series.files)
    try:
        with _keep_locale():
            image = reader.Execute()
    except RuntimeError as exc:
        raise RadiologyAIError(f"{series.folder}: cannot read DICOM series ({_first_line(exc)})") from None
    return image


def read_image(
    path: str | os.PathLike, what: str = "image", modality: str | None = None, series: str | None = None
) -> sitk.Image:
    """Read an image file, or a DICOM series in a folder, as a SimpleITK image.

    A folder must hold one DICOM series, or ``series`` names the one to read (its SeriesInstanceUID, as the
    error for a folder with several lists them). Raises :class:`RadiologyAIError` naming the path when it is
    missing, unreadable, a folder with no DICOM series or several and none chosen, with a DICOM file no series
    could take, or a series whose Modality tag is not ``modality`` (e.g. "CT"), when that is given.
    """
    path = Path(path)
    if not path.exists():
        raise RadiologyAIError(f"{what} {path}: no such file or folder")
    if path.is_dir():
        return read_dicom_folder(path, what, modality, series)
    if series:
        raise RadiologyAIError(f"{what} {path}: a series was chosen ({series}), but this is a file, not a DICOM folder")
    try:
        with _keep_locale():
            reader = sitk.ImageFileReader()
            reader.SetFileName(str(path))
            reader.ReadImageInformation()
            voxels = float(np.prod(reader.GetSize(), dtype=float)) * reader.GetNumberOfComponents()
            check_memory(
                voxels * np.dtype(_NUMPY_TYPES.get(reader.GetPixelIDValue(), np.float64)).itemsize,
                f"{what} {path} ({' x '.join(map(str, reader.GetSize()))} voxels)",
            )
            return reader.Execute()
    except RuntimeError as exc:
        raise RadiologyAIError(f"{what} {path}: not an image SimpleITK can read ({_first_line(exc)})") from None


def read_dicom_folder(
    path: Path, what: str = "image", modality: str | None = None, series: str | None = None
) -> sitk.Image:
    """The one DICOM series in folder ``path``, or the one whose SeriesInstanceUID is ``series``
    (see :func:`read_image`)."""
    found = list_dicom_series(path)
    if not found:
        raise RadiologyAIError(f"{what} {path}: the folder holds no DICOM series")
    check_no_skipped_files(path, found)
    names = "; ".join(
        f"{s.series_uid} ({s.description or 'no description'}, {len(s.files)} files in {s.folder})" for s in found
    )
    if series:
        found = [s for s in found if s.series_uid == series.strip()]
        if not found:
            raise RadiologyAIError(f"{what} {path}: no DICOM series {series} in the folder; it holds {names}")
    if len(found) > 1:
        raise RadiologyAIError(
            f"{what} {path}: the folder holds {len(found)} DICOM series ({names}); choose one by "
            "its UID (--series UID on the command line) or give the folder of the one to use"
        )
    if modality and found[0].modality and found[0].modality.upper() != modality.upper():
        raise RadiologyAIError(f"{what} {path}: the DICOM series is {found[0].modality}, this command needs {modality}")
    return read_dicom_series(found[0])


def validate_geometry(image: sitk.Image, what: str = "image") -> sitk.Image:
    """Positive finite spacing, a finite origin and an orthonormal direction matrix; return ``image``.

    A direction matrix that is not orthonormal (a shear or scale written into it by a
    converter) makes every physical length, and so every volume, wrong without any error.
    """
    if any(not np.isfinite(s) or s <= 0 for s in image.GetSpacing()):
        raise RadiologyAIError(f"{what}: voxel spacing must be positive, got {image.GetSpacing()}")
    if not all(np.isfinite(o) for o in image.GetOrigin()):
        raise RadiologyAIError(f"{what}: the origin is not finite ({image.GetOrigin()})")
    dimension = image.GetDimension()
    direction = np.asarray(image.GetDirection(), dtype=float).reshape(dimension, dimension)
    if not np.isfinite(direction).all() or not np.allclose(direction.T @ direction, np.eye(dimension), atol=1e-3):
        raise RadiologyAIError(
            f"{what}: the direction matrix is not orthonormal ({np.round(direction, 4).tolist()}); "
            "the file's geometry is damaged, and volumes measured on it would be wrong"
        )
    return image


def validate_scalar_volume(image: sitk.Image, what: str = "image", min_voxels_per_axis: int = 1) -> sitk.Image:
    """Check that ``image`` is a finite 3D scalar volume with sound geometry; return it.

    ``min_voxels_per_axis``: what the command's filters need along each axis (say, 4 for a
    Gaussian derivative); a thinner volume gets a clear error instead of a library's.
    """
    if image.GetDimension() != 3:
        raise RadiologyAIError(f"{what}: expected a 3D volume, got a {image.GetDimension()}D image")
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise RadiologyAIError(
            f"{what}: expected a scalar (grey-level) volume, "
            f"got {image.GetNumberOfComponentsPerPixel()} components per voxel"
        )
    if min(image.GetSize()) < 1 or image.GetNumberOfPixels() < 2:
        raise RadiologyAIError(f"{what}: the volume is empty (size {image.GetSize()})")
    if min(image.GetSize()) < min_voxels_per_axis:
        raise RadiologyAIError(
            f"{what}: {image.GetSize()} voxels is too small; this command needs at least "
            f"{min_voxels_per_axis} voxels along each axis"
        )
    validate_geometry(image, what)
    array = sitk.GetArrayViewFromImage(image)
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        bad = int((~np.isfinite(array)).sum())
        raise RadiologyAIError(f"{what}: {bad} voxels are NaN or infinite")
    return image


def read_volume(
    path: str | os.PathLike, what: str = "image", modality: str | None = None, series: str | None = None
) -> sitk.Image:
    """:func:`read_image` followed by :func:`validate_scalar_volume`."""
    return validate_scalar_volume(read_image(path, what, modality, series), f"{what} {path}")


def same_geometry(a: sitk.Image, b: sitk.Image, tolerance: float = 1e-4) -> bool:
    """True when two images share size, spacing, origin and direction (within ``tolerance``)."""
    return (
        a.GetSize() == b.GetSize()
        and np.allclose(a.GetSpacing(), b.GetSpacing(), atol=tolerance)
        and np.allclose(a.GetOrigin(), b.GetOrigin(), atol=tolerance * max(1.0, max(a.GetSpacing())))
        and np.allclose(a.GetDirection(), b.GetDirection(), atol=tolerance)
    )


class _ImageVoxels:
    """What a view from :func:`voxels_of` points into: the image, kept alive as long as the view (SimpleITK's own
    ``GetArrayViewFromImage`` does not hold it, so its view dangles once the image is freed)."""

    def __init__(self, image: sitk.Image):
        self.image = image
        self.__array_interface__ = sitk.GetArrayViewFromImage(image).__array_interface__


def voxels_of(image: sitk.Image) -> np.ndarray:
    """The image's voxels as a read-only (z, y, x) NumPy view that keeps the image alive: no copy of a volume."""
    return np.asarray(_ImageVoxels(image))


def image_from_array(array: np.ndarray, reference: sitk.Image) -> sitk.Image:
    """A SimpleITK image of the (z, y, x) ``array`` with the spacing, origin and direction of ``reference``."""
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(reference)
    return image


def write_image(image: sitk.Image, path: str | os.PathLike, compress: bool = True) -> Path:
    """Write ``image`` atomically: to a temporary name beside ``path``, then rename."""
    path = Path(path)
    try:
        with atomic_path(path) as tmp, _keep_locale():
            sitk.WriteImage(image, str(tmp), compress)
    except RuntimeError as exc:  # ITK reports a full disk or a failed write as a RuntimeError of many lines
        raise RadiologyAIError(f"cannot write {path}: {_write_failure(path, exc)}") from None
    return path


def _write_failure(path: Path, exc: RuntimeError) -> str:
    import shutil

    try:
        if shutil.disk_usage(path.parent).free < 1 << 20:
            return "the disk is full"
    except OSError:
        pass
    if not os.access(path.parent, os.W_OK):
        return "permission denied"
    return _first_line(exc)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    # ITK messages put the useful sentence last ("... Description: ...").
    for line in reversed(text):
        if line.strip():
            return line.strip().removeprefix("Description: ")
    return type(exc).__name__
