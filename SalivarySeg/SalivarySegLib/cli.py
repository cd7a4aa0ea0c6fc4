"""``radiologyai salivary synth | train | predict | evaluate``.

Import-light: torch and MONAI are imported inside the handlers (``cli.require``), so the rest of
the CLI works without them. Every handler checks all of its inputs before writing anything and
writes through a staging folder, so a failure leaves no partial output.
"""

from __future__ import annotations

import json
from pathlib import Path

from RadiologyAICommonLib.errors import RadiologyAIError


def configure_parser(parser) -> None:
    from RadiologyAICommonLib.cli import add_overwrite_argument, add_series_argument

    commands = parser.add_subparsers(dest="salivary_command", metavar="SUBCOMMAND", required=True)

    synth = commands.add_parser(
        "synth",
        help="write a synthetic head-and-neck CT dataset (images/, labels/, cases.csv)",
        description="Synthetic non-contrast neck CTs with parotid/submandibular glands and one "
        "benign (circumscribed) or malignant (infiltrative) lesion each.",
    )
    synth.add_argument("--output-dir", required=True, help="dataset folder to create (must be new or empty)")
    synth.add_argument("--cases", type=int, default=16, help="number of cases (default 16; diagnoses balanced)")
    synth.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    synth.add_argument(
        "--first-index",
        type=int,
        default=0,
        help="number of the first case (case_NNN); use different ranges for unseen cases (default 0)",
    )
    synth.add_argument(
        "--spacing",
        type=float,
        nargs=3,
        metavar=("X", "Y", "Z"),
        help="fixed voxel size in mm (default: random per case, in-plane 0.8-1.1, slices 1.5-3)",
    )
    synth.add_argument(
        "--fov",
        type=float,
        nargs=3,
        metavar=("X", "Y", "Z"),
        default=(200.0, 200.0, 140.0),
        help="field of view in mm (default 200 200 140)",
    )
    add_overwrite_argument(synth)
    synth.set_defaults(handler=run_synth)

    train = commands.add_parser(
        "train",
        help="train V-Net segmentation + ResNet-50 classification on a dataset",
        description="Train on DATASET (images/, labels/, cases.csv) and write a model folder: "
        "model.pt, config.json, metrics.json, history.csv/png, per-epoch validation "
        "predictions.",
    )
    train.add_argument("dataset", help="dataset folder")
    train.add_argument("--output-dir", required=True, help="model folder to write")
    train.add_argument("--epochs", type=int, default=80, help="maximum V-Net epochs (default 80)")
    train.add_argument("--classifier-epochs", type=int, default=12, help="maximum ResNet-50 epochs (default 12)")
    train.add_argument(
        "--patience", type=int, default=25, help="early stopping: epochs without improvement (default 25)"
    )
    train.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    train.add_argument("--threads", type=int, help="CPU threads for torch (default: all available)")
    train.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    train.add_argument("--batch-size", type=int, default=4, help="patches per V-Net step (default 4)")
    train.add_argument(
        "--patch-size",
        type=int,
        nargs=3,
        default=(32, 32, 32),
        metavar=("X", "Y", "Z"),
        help="training patch in 2 mm voxels, multiples of 16 (default 32 32 32 = 64 mm)",
    )
    train.add_argument("--samples-per-case", type=int, default=4, help="patches per case per epoch (default 4)")
    train.add_argument("--learning-rate", type=float, default=1e-3, help="V-Net Adam peak learning rate (default 1e-3)")
    train.add_argument(
        "--warmup-epochs",
        type=int,
        default=3,
        help="V-Net epochs of linear learning-rate warm-up before the cosine decay (default 3)",
    )
    train.add_argument(
        "--architecture",
        choices=("vnet_lite", "vnet"),
        default="vnet_lite",
        help="vnet_lite: CPU-friendly modified V-Net (default); vnet: MONAI VNet (GPU)",
    )
    train.add_argument(
        "--classifier",
        choices=("resnet50", "resnet34", "resnet18"),
        default="resnet50",
        help="slice classifier: resnet50 as published (default), or a lighter ResNet",
    )
    train.add_argument("--base-channels", type=int, default=8, help="vnet_lite first-stage channels (default 8)")
    train.add_argument("--val-fraction", type=float, default=0.15, help="validation share without a split column")
    train.add_argument("--test-fraction", type=float, default=0.15, help="test share without a split column")
    train.add_argument("--max-minutes", type=float, help="wall-clock budget; training stops early to respect it")
    train.add_argument(
        "--pretrained-resnet",
        metavar="FILE",
        help="local ResNet-50 weights (state dict) to start the classifier from; read weights-only",
    )
    train.add_argument("--no-augmentation", action="store_true", help="train without augmentation")
    train.add_argument(
        "--no-validation-masks",
        action="store_true",
        help="do not keep the per-epoch validation masks (validation_masks/)",
    )
    add_overwrite_argument(train)
    train.set_defaults(handler=run_train)

    predict = commands.add_parser(
        "predict",
        help="segment and classify a CT (or every image of a dataset)",
        description="Writes tumour_label.nrrd (on the input grid) and prediction.json "
        "(class, probability). IMAGE may be a file, a DICOM folder, or a dataset "
        "folder (one sub-folder per case plus predictions.csv).",
    )
    predict.add_argument("image", help="CT volume file, DICOM series folder, or dataset folder with images/")
    add_series_argument(predict)
    predict.add_argument("--model", required=True, help="model folder written by 'train'")
    predict.add_argument("--output-dir", required=True, help="folder for the results")
    predict.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    predict.add_argument("--threads", type=int, help="CPU threads for torch (default: all available)")
    predict.add_argument(
        "--component",
        choices=("most_confident", "largest", "all"),
        help="tumour components kept: the most confident one, the largest one (published option) "
        "or all (default: the model's setting, normally most_confident)",
    )
    predict.add_argument(
        "--skip-ct-check",
        action="store_true",
        help="do not refuse volumes that do not look like CT in HU (results are then meaningless "
        "unless the intensities really are HU)",
    )
    add_overwrite_argument(predict)
    predict.set_defaults(handler=run_predict)

    evaluate = commands.add_parser(
        "evaluate",
        help="Dice, HD95 and ASD (mm) of predictions against ground truth",
        description="PRED and TRUTH are two label files, or two folders: TRUTH a dataset "
        "(labels/ + cases.csv) or a folder of label files, PRED the output of a "
        "dataset 'predict' or a folder of label files named by case id.",
    )
    evaluate.add_argument("--pred", required=True, help="predicted label file or folder")
    evaluate.add_argument("--truth", required=True, help="ground-truth label file, dataset or folder")
    evaluate.add_argument("--output-dir", help="also write evaluation.csv and evaluation.json here")
    add_overwrite_argument(evaluate)
    evaluate.set_defaults(handler=run_evaluate)


def _print_json(data) -> None:
    from RadiologyAICommonLib.atomic import json_ready

    print(json.dumps(json_ready(data), indent=2))


def run_synth(args, progress) -> int:
    from .synthetic import SyntheticParameters, make_dataset

    if args.cases < 1 or args.cases > 2000:
        raise RadiologyAIError(f"--cases must be between 1 and 2000, got {args.cases}")
    if args.spacing is not None and any(s <= 0 or s > 10 for s in args.spacing):
        raise RadiologyAIError(f"--spacing must be positive (mm, at most 10), got {args.spacing}")
    if any(f < 64 or f > 600 for f in args.fov):
        raise RadiologyAIError(f"--fov must be between 64 and 600 mm per axis, got {args.fov}")
    output = Path(args.output_dir)
    params = SyntheticParameters(fov_mm=tuple(args.fov), spacing_mm=tuple(args.spacing) if args.spacing else None)
    rows = make_dataset(
        output, args.cases, args.seed, params, start_index=args.first_index, progress=progress, overwrite=args.overwrite
    )
    _print_json(
        {
            "output_dir": str(output),
            "cases": len(rows),
            "benign": sum(r["diagnosis"] == "benign" for r in rows),
            "malignant": sum(r["diagnosis"] == "malignant" for r in rows),
        }
    )
    return 0


def run_train(args, progress) -> int:
    from RadiologyAICommonLib.cli import require

    require("torch", "salivary")
    require("monai", "salivary")
    from .dataset import load_dataset
    from .networks import ClassificationNetworkParameters, SegmentationNetworkParameters
    from .training import TrainingParameters, train

    output = Path(args.output_dir)
    load_dataset(args.dataset)  # every input checked before anything is written
    if args.base_channels < 2 or args.base_channels > 64:
        raise RadiologyAIError(f"--base-channels must be between 2 and 64, got {args.base_channels}")
    params = TrainingParameters(
        epochs=args.epochs,
        classifier_epochs=args.classifier_epochs,
        patience=args.patience,
        batch_size=args.batch_size,
        patch_size=tuple(args.patch_size),
        samples_per_case=args.samples_per_case,
        learning_rate=args.learning_rate,
        warmup_epochs=args.warmup_epochs,
        seed=args.seed,
        val_fraction=args.val_fraction,
        test_fraction=args.test_fraction,
        device=args.device,
        threads=args.threads,
        max_minutes=args.max_minutes,
        pretrained_classifier=args.pretrained_resnet,
        augment=not args.no_augmentation,
        save_validation_masks=not args.no_validation_masks,
    ).validate()
    segmentation = SegmentationNetworkParameters(architecture=args.architecture, base_channels=args.base_channels)
    classification = ClassificationNetworkParameters(architecture=args.classifier)
    result = train(
        args.dataset,
        output,
        params,
        segmentation=segmentation,
        classification=classification,
        progress=progress,
        overwrite=args.overwrite,
    )
    metrics = result.metrics
    _print_json(
        {
            "output_dir": str(output),
            "evaluated_on": metrics.get("evaluated_on"),
            "dice_mean": metrics["dice"]["mean"],
            "hd95_mm_mean": metrics["hd95_mm"]["mean"],
            "asd_mm_mean": metrics["asd_mm"]["mean"],
            "accuracy": metrics["classification"]["accuracy"],
            "f1": metrics["classification"]["f1"],
            "training_seconds": round(result.seconds, 1),
        }
    )
    return 0


def _is_dataset(path: Path) -> bool:
    return path.is_dir() and (path / "images").is_dir()


def run_predict(args, progress) -> int:
    from RadiologyAICommonLib.cli import require

    require("torch", "salivary")
    require("monai", "salivary")
    from RadiologyAICommonLib.atomic import write_csv, write_json
    from RadiologyAICommonLib.imageio import read_volume, write_image
    from RadiologyAICommonLib.outputs import staged_output_dir
    from RadiologyAICommonLib.progress import subprogress

    from .inference import predict
    from .model_package import load_model_package
    from .runtime import configure_threads, resolve_device

    source = Path(args.image)
    output = Path(args.output_dir)
    staged = dict(command="salivary predict", inputs=[source, args.model], overwrite=args.overwrite)
    device = resolve_device(args.device)
    configure_threads(args.threads)
    package = load_model_package(args.model, device=device)
    component = args.component
    ct_check = not args.skip_ct_check
    if _is_dataset(source):
        from .dataset import load_dataset

        records = load_dataset(source, require_labels=False, check_contents=False)
        images = [(r.case_id, read_volume(r.image, f"case '{r.case_id}' image")) for r in records]
        rows = []
        with staged_output_dir(output, **staged) as staging:
            for i, (case_id, image) in enumerate(images):
                sub = subprogress(progress, i / len(images), (i + 1) / len(images))
                result = predict(image, package, device, component, sub, what=f"case '{case_id}'", ct_check=ct_check)
                write_image(result.label, staging / case_id / "tumour_label.nrrd")
                write_json(staging / case_id / "prediction.json", result.to_json())
                rows.append(
                    {
                        "case_id": case_id,
                        **{k: v for k, v in result.to_json().items() if k != "probabilities"},
                        "probability_malignant": result.probabilities.get("malignant"),
                    }
                )
            import pandas as pd

            write_csv(staging / "predictions.csv", pd.DataFrame(rows))
        _print_json({"output_dir": str(output), "cases": rows})
        return 0
    image = read_volume(source, "image", modality="CT", series=args.series)
    with staged_output_dir(output, **staged) as staging:
        result = predict(image, package, device, component, progress, what=f"image {source}", ct_check=ct_check)
        write_image(result.label, staging / "tumour_label.nrrd")
        write_json(staging / "prediction.json", result.to_json())
    _print_json({"output_dir": str(output), **result.to_json()})
    return 0


def run_evaluate(args, progress) -> int:
    from RadiologyAICommonLib.cli import require

    require("monai", "salivary")
    from .evaluation import evaluate_folders, evaluate_pair

    pred, truth = Path(args.pred), Path(args.truth)
    for path, what in ((pred, "--pred"), (truth, "--truth")):
        if not path.exists():
            raise RadiologyAIError(f"{what} {path}: no such file or folder")
    if pred.is_file() != truth.is_file():
        raise RadiologyAIError("--pred and --truth must both be files or both be folders")
    if pred.is_file():
        result = evaluate_pair(pred, truth)
        if args.output_dir:
            from RadiologyAICommonLib.atomic import write_json
            from RadiologyAICommonLib.outputs import staged_output_dir

            with staged_output_dir(
                args.output_dir, command="salivary evaluate", inputs=[pred, truth], overwrite=args.overwrite
            ) as staging:
                write_json(staging / "evaluation.json", result)
        _print_json(result)
        return 0
    rows, summary = evaluate_folders(pred, truth, progress)
    if args.output_dir:
        import pandas as pd

        from RadiologyAICommonLib.atomic import write_csv, write_json
        from RadiologyAICommonLib.outputs import staged_output_dir

        with staged_output_dir(
            args.output_dir, command="salivary evaluate", inputs=[pred, truth], overwrite=args.overwrite
        ) as staging:
            write_csv(staging / "evaluation.csv", pd.DataFrame(rows))
            write_json(staging / "evaluation.json", {"summary": summary, "cases": rows})
    _print_json({"summary": summary, "cases": rows})
    return 0
