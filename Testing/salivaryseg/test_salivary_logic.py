"""SalivarySegLogic on a real MRML scene (slicer-core): CT node + model folder -> "Tumour" segment + class."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from RadiologyAICommonLib.errors import RadiologyAIError
from salivary_helpers import tiny_case, tiny_model

pytestmark = pytest.mark.usefixtures("mrml_scene")


def _tumour_image(result, volume):
    from RadiologyAICommonLib import mrml

    return mrml.segment_to_image(result.segmentationNode, "Tumour", volume)


def test_in_process_and_worker_give_the_same_result():
    from RadiologyAICommonLib import mrml
    from SalivarySegLib.inference import predict
    from SalivarySegLib.logic import SalivarySegLogic
    from SalivarySegLib.model_package import load_model_package

    model = tiny_model()
    case = tiny_case(60)
    volume = mrml.image_to_volume_node(case.image, "neck CT")
    logic = SalivarySegLogic()

    in_process = logic.process(volume, str(model), inProcess=True)
    segmentation = in_process.segmentationNode.GetSegmentation()
    assert segmentation.GetNumberOfSegments() == 1
    assert segmentation.GetSegment(segmentation.GetSegmentIdBySegmentName("Tumour")) is not None
    assert in_process.segmentationNode.GetName() == "neck CT tumour"
    assert in_process.segmentationNode.GetAttribute("SalivarySeg.class") == str(in_process.className)

    # The segment equals the core's prediction on the same grid as the input volume.
    expected = predict(case.image, load_model_package(model))
    mask = _tumour_image(in_process, volume)
    assert mask.GetSize() == case.image.GetSize()
    assert np.array_equal(sitk.GetArrayFromImage(mask) > 0, sitk.GetArrayFromImage(expected.label) > 0)
    assert in_process.className == expected.class_name

    # The widget's path: the CLI in a worker process, results loaded back into the given node.
    progress = []
    via_worker = logic.process(
        volume,
        str(model),
        segmentationNode=in_process.segmentationNode,
        inProcess=False,
        progress=lambda f, m: progress.append(f),
    )
    assert via_worker.segmentationNode is in_process.segmentationNode
    assert via_worker.segmentationNode.GetSegmentation().GetNumberOfSegments() == 1
    assert via_worker.className == in_process.className
    if via_worker.probability is not None:
        assert via_worker.probability == pytest.approx(in_process.probability, abs=1e-4)
    assert progress and max(progress) == pytest.approx(1.0)
    assert np.array_equal(sitk.GetArrayFromImage(_tumour_image(via_worker, volume)), sitk.GetArrayFromImage(mask))


def test_worker_errors_surface_as_radiologyai_errors(tmp_path):
    from RadiologyAICommonLib import mrml
    from SalivarySegLib.logic import SalivarySegLogic

    rng = np.random.default_rng(0)
    mri = sitk.GetImageFromArray(rng.integers(0, 1000, (24, 40, 40)).astype(np.int16))
    volume = mrml.image_to_volume_node(mri, "MRI")
    logic = SalivarySegLogic()
    with pytest.raises(RadiologyAIError, match="does not look like a CT"):
        logic.process(volume, str(tiny_model()), inProcess=False)
    with pytest.raises(RadiologyAIError, match="missing config.json"):
        logic.process(volume, str(tmp_path), inProcess=True)
    with pytest.raises(RadiologyAIError, match="choose a model folder"):
        logic.checkModelFolder("")
