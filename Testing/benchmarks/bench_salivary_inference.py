"""Benchmark: CPU inference time of SalivarySeg on a 2 mm head-and-neck CT of about 170 x 160 x 160 voxels.

Goal (issue 5): <= 20 s on CPU. Times the whole ``predict`` core (published preprocessing,
V-Net sliding-window inference, resampling back, largest component, ResNet-50 on the lesion
slices) after the model is loaded, on a synthetic CT with a 340 x 320 x 320 mm field of view at
2 mm (170 x 160 x 160 voxels). Two settings are timed:

* as configured: the body crop of the preprocessing removes the air around the neck;
* worst case: the body crop disabled, so the network runs on the whole padded 176 x 160 x 160 grid.

``--model DIR`` uses a trained model folder (e.g. the one the training benchmark keeps with
``--workdir``); without it, a model package with randomly initialised weights of the default
architectures is written and used (the network cost does not depend on the weight values).

Run: .venv/bin/python Testing/benchmarks/bench_salivary_inference.py [--threads 2] [--model DIR] [--repeat 2]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--model", help="trained model folder (default: random weights, default architectures)")
    parser.add_argument("--repeat", type=int, default=2, help="timed runs per setting (the best is reported)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--roi", type=int, help="override the model's sliding-window size (voxels per side)")
    args = parser.parse_args()

    import torch

    from SalivarySegLib.inference import predict
    from SalivarySegLib.model_package import InferenceParameters, load_model_package, make_config, save_model_package
    from SalivarySegLib.networks import (
        ClassificationNetworkParameters,
        SegmentationNetworkParameters,
        build_classifier,
        build_segmentation_network,
    )
    from SalivarySegLib.preprocessing import PreprocessingParameters
    from SalivarySegLib.runtime import configure_threads
    from SalivarySegLib.slices import SliceParameters
    from SalivarySegLib.synthetic import SyntheticParameters, make_case

    configure_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="bench-salivary-inference-"))
    try:
        model = args.model
        if model is None:
            torch.manual_seed(0)
            seg, cls = SegmentationNetworkParameters(), ClassificationNetworkParameters()
            config = make_config(
                PreprocessingParameters(), seg, cls, SliceParameters(), InferenceParameters(), {"note": "random"}
            )
            save_model_package(
                work / "model", config, build_segmentation_network(seg).state_dict(), build_classifier(cls).state_dict()
            )
            model = work / "model"
        package = load_model_package(model, device=args.device)
        if args.roi:
            package.inference.roi_size = (args.roi,) * 3
        case = make_case(
            7, seed=11, params=SyntheticParameters(fov_mm=(340.0, 320.0, 320.0), spacing_mm=(2.0, 2.0, 2.0))
        )
        print(
            f"SalivarySeg inference benchmark ({args.threads} threads, device {args.device}, "
            f"model {'random weights' if args.model is None else model})"
        )
        print(
            f"  input CT {case.image.GetSize()} voxels at {case.image.GetSpacing()} mm; sliding window "
            f"{package.inference.roi_size}"
        )
        worst_ok = True
        for name, body_threshold in (
            ("as configured (body crop)", package.preprocessing.body_threshold),
            ("worst case (no body crop)", -1.0),
        ):
            package.preprocessing.body_threshold = body_threshold
            times = []
            for _ in range(max(args.repeat, 1)):
                start = time.perf_counter()
                result = predict(case.image, package, args.device)
                times.append(time.perf_counter() - start)
            from SalivarySegLib.preprocessing import preprocess

            grid = tuple(preprocess(case.image, None, package.preprocessing)["image"].shape[1:])
            best = min(times)
            worst_ok &= best <= 20.0
            print(
                f"  {name:28s} network grid {grid}: best {best:.1f} s (runs: {', '.join(f'{t:.1f}' for t in times)}); "
                f"class {result.class_name}, lesion {result.lesion_volume_ml:.1f} ml"
            )
        print("GOAL", "MET" if worst_ok else "NOT MET", "(CPU inference <= 20 s)")
        return 0 if worst_ok else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
