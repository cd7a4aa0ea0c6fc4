"""Shared helpers of the PhantomQA tests: a small simulated phantom study and real DICOM files."""

from __future__ import annotations

import datetime
from pathlib import Path

import numpy as np
import SimpleITK as sitk

# A compact grid that still holds the default phantom's vessel tree (keeps VesselQuant fast).
SMALL_SIZE = (84, 84, 74)
SMALL_SPACING = (0.9, 0.9, 1.0)


def small_geometry():
    from PhantomQALib.simulate import ScanGeometry

    return ScanGeometry(size=SMALL_SIZE, spacing_mm=SMALL_SPACING)


def write_ct_series(
    image: sitk.Image, folder: Path, ctdivol_mgy: float | None, kernel: str, description: str, series_number: int = 1
) -> Path:
    """Write ``image`` (HU) as a real CT Image Storage DICOM series with pydicom.

    Each slice carries CTDIvol (0018,9345), ConvolutionKernel (0018,1210), SeriesDescription,
    rescale slope/intercept and the geometry tags SimpleITK/GDCM need to rebuild the volume.
    """
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    array = sitk.GetArrayFromImage(image).astype(np.int32)
    spacing = image.GetSpacing()
    origin = np.array(image.GetOrigin(), float)
    series_uid, study_uid, frame_uid = generate_uid(), generate_uid(), generate_uid()
    now = datetime.datetime(2024, 1, 1, 12, 0, 0)
    intercept = -1024
    for k in range(array.shape[0]):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = FileDataset(str(folder / f"slice{k:04d}.dcm"), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.Modality = "CT"
        ds.PatientName = "Phantom^LungVessel"
        ds.PatientID = "PHANTOM"
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.FrameOfReferenceUID = frame_uid
        ds.SeriesNumber = series_number
        ds.InstanceNumber = k + 1
        ds.StudyDate = ds.SeriesDate = now.strftime("%Y%m%d")
        ds.SeriesDescription = description
        ds.ConvolutionKernel = kernel
        if ctdivol_mgy is not None:
            ds.CTDIvol = float(ctdivol_mgy)
        ds.ImagePositionPatient = [float(v) for v in origin + np.array([0.0, 0.0, k * spacing[2]])]
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.PixelSpacing = [float(spacing[1]), float(spacing[0])]
        ds.SliceThickness = float(spacing[2])
        ds.Rows, ds.Columns = array.shape[1], array.shape[2]
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 0
        ds.RescaleIntercept = intercept
        ds.RescaleSlope = 1
        ds.PixelData = np.clip(array[k] - intercept, 0, 65535).astype(np.uint16).tobytes()
        ds.save_as(str(folder / f"slice{k:04d}.dcm"), enforce_file_format=True)
    return folder
