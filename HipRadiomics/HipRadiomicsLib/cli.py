"""``radiologyai hip extract | train | predict | synth``.

Import-light: radiomics, xgboost, boruta and scikit-learn are imported inside the handlers.
All inputs are validated before anything is written; outputs appear atomically.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from RadiologyAICommonLib.errors import RadiologyAIError
from RadiologyAICommonLib.userinput import parse_names

EXTRA = "hip"


def configure_parser(parser) -> None:
    from RadiologyAICommonLib.cli import add_overwrite_argument, add_series_argument

    commands = parser.add_subparsers(dest="hip_command", metavar="ACTION", required=True)

    extract = commands.add_parser(
        "extract",
        help="PyRadiomics features of every case of a cohort CSV",
        description="Extract PyRadiomics features for a cohort CSV with columns case_id, image, "
        "mask, label [, mask_label] [, reader...] (paths relative to the CSV).",
    )
    extract.add_argument("cohort", help="cohort CSV")
    extract.add_argument("--output", required=True, help="features CSV to write (one row per case)")
    extract.add_argument("--params", help="PyRadiomics params YAML (default: the shipped MRI params, mri_default.yaml)")
    extract.add_argument(
        "--workers", type=int, default=None, help="parallel worker processes (default: CPU count, at most 8)"
    )
    extract.add_argument(
        "--scheduler", help="dask.distributed scheduler address (e.g. tcp://host:8786) instead of local processes"
    )
    extract.add_argument(
        "--mask-label",
        type=int,
        default=None,
        help="label value of the ROI in the masks (default: params "
        "label if present, else the mask's only label); a mask_label column overrides it per case",
    )
    extract.add_argument("--strict", action="store_true", help="stop with an error at the first case that fails")
    extract.add_argument("--failed-log", help="CSV of failed cases (default: OUTPUT.failed.csv)")
    add_overwrite_argument(extract)
    extract.set_defaults(handler=run_extract)

    train = commands.add_parser(
        "train",
        help="feature selection + XGBoost, validated on a held-out split",
        description="Train the classifier on a features table (from 'hip extract' or any table with a "
        "'label' column and numeric feature columns) and validate it.",
    )
    train.add_argument("features", help="features CSV")
    train.add_argument("--output-dir", required=True, help="model folder to write")
    train.add_argument("--test-size", type=float, default=0.3, help="held-out fraction, stratified (default 0.3)")
    train.add_argument(
        "--selector", choices=("boruta", "rfecv", "none"), default="boruta", help="feature selector (default boruta)"
    )
    train.add_argument(
        "--selector-estimator",
        choices=("rf", "xgboost"),
        default="rf",
        help="importance estimator of Boruta / RFECV (default rf)",
    )
    train.add_argument(
        "--collinearity", type=float, default=0.9, help="|Pearson r| threshold of the collinearity filter (0.9)"
    )
    train.add_argument("--boruta-max-iter", type=int, default=100, help="Boruta iterations (default 100)")
    train.add_argument(
        "--rfecv-step", type=float, default=1, help="features removed per RFECV step (int) or fraction (<1)"
    )
    train.add_argument(
        "--threshold",
        default="0.5",
        help="decision threshold: a probability (default 0.5) or 'youden' "
        "(Youden's J on out-of-fold training predictions)",
    )
    train.add_argument(
        "--cv-repeats",
        type=int,
        default=0,
        help="also run repeated stratified k-fold CV of the whole pipeline with this many repeats (default 0: off)",
    )
    train.add_argument("--cv-folds", type=int, default=5, help="folds for the CV and the Youden threshold (default 5)")
    train.add_argument(
        "--positive-class",
        help="label of the positive class (default: 1 for 0/1 labels, else the second label in sorted order)",
    )
    train.add_argument("--readers", help="comma-separated reader-score columns (default: columns named reader*)")
    train.add_argument(
        "--exclude", help="comma-separated columns that are neither features nor readers (e.g. patient data)"
    )
    train.add_argument("--seed", type=int, default=0, help="seed of the split, Boruta and XGBoost (default 0)")
    train.add_argument("--n-jobs", type=int, default=1, help="threads for the tree ensembles (default 1)")
    add_overwrite_argument(train)
    train.set_defaults(handler=run_train)

    predict = commands.add_parser("predict", help="class and probability of one image + mask with a trained model")
    predict.add_argument("image", help="MRI volume (any format SimpleITK reads, or a DICOM folder)")
    add_series_argument(predict)
    predict.add_argument("mask", help="mask / label map of the ROI (femoral head)")
    predict.add_argument("--model", required=True, help="model folder written by 'hip train'")
    predict.add_argument("--mask-label", type=int, default=None, help="label value of the ROI in the mask")
    predict.add_argument("--top", type=int, default=5, help="number of contributing features to list (default 5)")
    predict.set_defaults(handler=run_predict)

    synth = commands.add_parser("synth", help="synthetic MRI-like two-class cohort (demo, tests, benchmarks)")
    synth.add_argument("--output-dir", required=True, help="folder for images/, masks/, cohort.csv, truth.csv")
    synth.add_argument("--cases", type=int, default=100, help="number of cases (default 100)")
    synth.add_argument("--size", type=int, default=48, help="voxels per side of each volume (default 48)")
    synth.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    add_overwrite_argument(synth)
    synth.set_defaults(handler=run_synth)


def run_extract(args, progress) -> int:
    import contextlib

    from RadiologyAICommonLib.cli import require
    from RadiologyAICommonLib.outputs import staged_output_files

    require("radiomics", EXTRA)
    from .cohort import extract_cohort, read_cohort_csv
    from .features_table import meta_path
    from .radiomics_params import load_params

    output = Path(args.output)
    failed_log = Path(args.failed_log) if args.failed_log else Path(str(output) + ".failed.csv")
    if args.workers is not None and args.workers < 1:
        raise RadiologyAIError("--workers must be at least 1")
    params = load_params(args.params)
    cases = read_cohort_csv(args.cohort)
    inputs = [args.cohort, args.params, *(c.image for c in cases), *(c.mask for c in cases)]
    # the features table and its sidecar go in together or not at all; the failed log with them, or on its own
    beside = failed_log.resolve().parent == output.resolve().parent
    staged = dict(command="hip extract", inputs=inputs, overwrite=args.overwrite)
    with contextlib.ExitStack() as stack:
        stage = stack.enter_context(
            staged_output_files([output, meta_path(output), *([failed_log] if beside else [])], **staged)
        )
        failed_stage = stage if beside else stack.enter_context(staged_output_files([failed_log], **staged))
        result = extract_cohort(cases, params, args.workers, args.scheduler, args.mask_label, args.strict, progress)
        _write_extraction(result, params, args, output, stage, failed_stage, failed_log)
    n_features = result.features.shape[1] - 2 - len(result.reader_columns)
    summary = {
        "features": str(output),
        "cases": int(len(result.features)),
        "failed": int(len(result.failed)),
        "failed_log": str(failed_log),
        "n_features": int(n_features),
        "params_sha256": params.sha256,
        "seconds": round(result.seconds, 2),
    }
    if len(result.failed):
        print(f"warning: {len(result.failed)} of {len(cases)} cases failed; see {failed_log}", file=sys.stderr)
    print(json.dumps(summary, indent=2))
    return 0


def _write_extraction(result, params, args, output: Path, stage: Path, failed_stage: Path, failed_log: Path) -> None:
    from RadiologyAICommonLib.atomic import write_csv, write_json

    import radiomics

    from .features_table import meta_path

    meta = {
        "format": "radiologyai-hip-features",
        "cohort": str(Path(args.cohort).resolve()),
        "params_source": params.source,
        "params": params.params,
        "params_sha256": params.sha256,
        "pyradiomics_version": str(radiomics.__version__),
        "mask_label": args.mask_label,
        "n_cases": int(len(result.features)),
        "n_failed": int(len(result.failed)),
        "reader_columns": result.reader_columns,
    }
    write_csv(failed_stage / failed_log.name, result.failed)
    write_json(stage / meta_path(output).name, meta)
    write_csv(stage / output.name, result.features)


def run_train(args, progress) -> int:
    from RadiologyAICommonLib.cli import require

    for module in ("xgboost", "sklearn", "boruta"):
        require(module, EXTRA)
    from .features_table import load_feature_table
    from .model import ModelParameters
    from .training import TrainingParameters, train_model, write_outputs

    from RadiologyAICommonLib.outputs import check_output_dir

    output_dir = Path(args.output_dir)
    check_output_dir(output_dir, inputs=[args.features], overwrite=args.overwrite)
    threshold = args.threshold.strip().lower()
    if threshold != "youden":
        try:
            threshold = float(threshold)
        except ValueError:
            raise RadiologyAIError(f"--threshold must be a probability or 'youden', got '{args.threshold}'") from None
    if args.cv_repeats < 0 or args.cv_folds < 2:
        raise RadiologyAIError("--cv-repeats must be >= 0 and --cv-folds >= 2")
    step = int(args.rfecv_step) if args.rfecv_step >= 1 else args.rfecv_step
    if step <= 0:
        raise RadiologyAIError("--rfecv-step must be positive")
    config = ModelParameters(
        collinearity_threshold=args.collinearity,
        selector=args.selector,
        selector_estimator=args.selector_estimator,
        boruta_max_iter=args.boruta_max_iter,
        rfecv_step=step,
        rfecv_folds=args.cv_folds,
        seed=args.seed,
        n_jobs=max(1, args.n_jobs),
    ).validate()
    table = load_feature_table(args.features, args.positive_class, parse_names(args.readers), parse_names(args.exclude))
    options = TrainingParameters(
        test_size=args.test_size, threshold=threshold, cv_folds=args.cv_folds, cv_repeats=args.cv_repeats, model=config
    )
    result = train_model(table, options, progress)
    write_outputs(result, output_dir, progress, overwrite=args.overwrite)
    m = result.metrics
    summary = {
        "output_dir": str(output_dir),
        "auc": m.auc,
        "auc_ci95": m.auc_ci95,
        "accuracy": m.accuracy.value,
        "sensitivity": m.sensitivity.value,
        "specificity": m.specificity.value,
        "threshold": m.threshold,
        "n_selected": m.n_selected,
        "selected_features": m.selected_features,
        "readers": [{"name": r.name, "auc": r.auc, "auc_ci95": r.auc_ci95, "p_value": r.p_value} for r in m.readers],
    }
    if m.cv:
        summary["cv_auc_mean"], summary["cv_auc_sd"] = m.cv.auc_mean, m.cv.auc_sd
    print(json.dumps(summary, indent=2))
    return 0


def run_predict(args, progress) -> int:
    from RadiologyAICommonLib.cli import require

    require("radiomics", EXTRA)
    require("xgboost", EXTRA)
    from RadiologyAICommonLib.imageio import read_image, read_volume

    from .model import load_model_folder
    from .predict import predict_image

    if args.top < 1:
        raise RadiologyAIError("--top must be at least 1")
    model = load_model_folder(args.model)
    image = read_volume(args.image, "image", modality="MR", series=args.series)
    mask = read_image(args.mask, "mask")
    progress(0.1, "extracting features")
    prediction = predict_image(model, image, mask, args.mask_label, what=f"{args.image}")
    progress(1.0, "done")
    print(
        json.dumps(
            {
                "image": str(args.image),
                "mask": str(args.mask),
                "model": str(args.model),
                **prediction.as_dict(args.top),
            },
            indent=2,
        )
    )
    return 0


def run_synth(args, progress) -> int:
    from RadiologyAICommonLib.outputs import staged_output_dir

    from .synthetic import SyntheticParameters, make_cohort

    if args.cases < 2:
        raise RadiologyAIError("--cases must be at least 2")
    if not 24 <= args.size <= 256:
        raise RadiologyAIError("--size must be between 24 and 256 voxels")
    config = SyntheticParameters(n_cases=args.cases, size=args.size, seed=args.seed)
    radius_max = args.size / 2 - 4
    if config.radius_range[1] > radius_max:
        config.radius_range = (min(config.radius_range[0], radius_max * 0.7), radius_max)
    with staged_output_dir(args.output_dir, command="hip synth", overwrite=args.overwrite) as stage:
        make_cohort(stage, config, progress)
    print(
        json.dumps(
            {
                "output_dir": str(args.output_dir),
                "cohort": str(Path(args.output_dir) / "cohort.csv"),
                "cases": args.cases,
            }
        )
    )
    return 0
