"""RadiologyAICommon: shared engine of the RadiologyAI extension (hidden module).

Holds no user interface of its own. The other RadiologyAI modules depend on it so that
``RadiologyAICommonLib`` (errors, progress, image I/O, MRML adapters, worker process,
reports, the ``radiologyai`` command line) is importable everywhere.
"""

import slicer
from slicer.ScriptedLoadableModule import ScriptedLoadableModule, ScriptedLoadableModuleTest


class RadiologyAICommon(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "RadiologyAI Common"
        self.parent.categories = ["RadiologyAI"]
        self.parent.dependencies = []
        self.parent.hidden = True
        self.parent.contributors = ["RadiologyAI contributors"]
        self.parent.helpText = (
            "Shared utilities of the RadiologyAI extension: image I/O, MRML adapters, worker process, reports. "
            "See https://github.com/radiologyai/SlicerRadiologyAI"
        )
        self.parent.acknowledgementText = "Part of the RadiologyAI extension."


class RadiologyAICommonTest(ScriptedLoadableModuleTest):
    """Checks the shared engine inside Slicer: MRML geometry round-trip and the CLI worker."""

    def setUp(self):
        slicer.mrmlScene.Clear(0)

    def runTest(self):
        self.setUp()
        self.delayDisplay("Starting the test")
        self.test_volume_round_trip()
        self.test_worker_help()
        self.delayDisplay("Test passed")

    def test_volume_round_trip(self):
        import numpy as np
        import SimpleITK as sitk

        from RadiologyAICommonLib import mrml

        image = sitk.GetImageFromArray(np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6))
        image.SetSpacing((0.7, 0.8, 1.5))
        image.SetOrigin((-10.0, 5.0, 30.0))
        image.SetDirection((0.0, 1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0))
        back = mrml.volume_node_to_image(mrml.image_to_volume_node(image, "roundtrip"))
        self.assertEqual(back.GetSize(), image.GetSize())
        for a, b in zip(
            back.GetDirection() + back.GetOrigin() + back.GetSpacing(),
            image.GetDirection() + image.GetOrigin() + image.GetSpacing(),
        ):
            self.assertAlmostEqual(a, b, places=6)

    def test_worker_help(self):
        from RadiologyAICommonLib.worker import WorkerProcess

        result = WorkerProcess(["--help"]).start().wait(timeout=120)
        self.assertEqual(result.returncode, 0, result.error)
        self.assertIn("vessels", result.stdout)
