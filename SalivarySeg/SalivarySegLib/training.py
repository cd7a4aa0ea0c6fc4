"""Training: V-Net segmentation, then ResNet-50 slice classification, then a held-out evaluation.

The run follows the study's protocol with the per-epoch learning analysis:

* the dataset is validated and split (the CSV's ``split`` column, or a seeded split stratified by
  diagnosis, :func:`.dataset.stratified_split`);
* every case is preprocessed once (:mod:`.preprocessing`) and kept in memory;
* the segmentation network learns from random patches (tumour-centred and background) with the
  published augmentation (:mod:`.augmentation`) and MONAI's ``DiceCELoss``; after each epoch the
  validation volumes are segmented with ``sliding_window_inference``: loss, Dice and the
  predicted masks of that epoch are kept;
* the ResNet-50 learns from the axial slices through the true lesions (:mod:`.slices`); after each
  epoch the validation patients are classified (patient-level aggregation);
* each stage keeps its best epoch (highest validation Dice; lowest validation patient log-loss)
  and stops early after ``patience`` epochs without improvement;
* the best models are applied to the test cases (or, without test cases, to the validation
  cases) exactly as ``predict`` does -- on the original grids, classification from the predicted
  mask -- and the metrics written beside the model.

Outputs (all written into a staging folder and moved into place only on success)::

    model.pt  config.json  metrics.json            the model package (:mod:`.model_package`)
    history.csv  history.png                       per-epoch losses and metrics of both stages
    validation_predictions.csv                     per-epoch, per-case validation predictions
    validation_masks/epoch_NNN/<case>.nrrd          per-epoch validation masks (2 mm grid)
    test_cases.csv  splits.csv                     per-case evaluation, the split used
"""

from __future__ import annotations

import copy
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from RadiologyAICommonLib.atomic import json_ready, write_csv, write_json
from RadiologyAICommonLib.errors import RadiologyAIError
from RadiologyAICommonLib.imageio import write_image
from RadiologyAICommonLib.outputs import staged_output_dir
from RadiologyAICommonLib.progress import ProgressCallback, no_progress, subprogress

from .augmentation import AugmentationParameters, sampling_map, slice_transforms, training_transforms
from .dataset import CLASS_NAMES, load_dataset, stratified_split
from .metrics import classification_metrics, segmentation_metrics, summarise
from .model_package import InferenceParameters, ModelPackage, make_config, save_model_package
from .networks import (
    ClassificationNetworkParameters,
    SegmentationNetworkParameters,
    build_classifier,
    build_segmentation_network,
    count_parameters,
    load_pretrained_classifier,
)
from .preprocessing import PreprocessingParameters, array_to_image, preprocess
from .runtime import configure_threads, resolve_device, seed_everything
from .slices import SliceParameters, aggregate, lesion_slices


@dataclass
class TrainingParameters:
    """Training settings; the defaults train a usable model on the synthetic data on 2 CPU cores in minutes."""

    epochs: int = 80  # segmentation epochs (maximum; early stopping may end sooner)
    classifier_epochs: int = 12  # classification epochs (maximum)
    patience: int = 25  # epochs without validation improvement before stopping (segmentation)
    selection_window: int = 5  # V-Net model selection on the mean validation Dice of the last N epochs (1 = raw)
    classifier_patience: int = 5
    batch_size: int = 4  # patches per segmentation step
    patch_size: tuple[int, int, int] = (32, 32, 32)  # training patch (voxels of 2 mm = 64 mm; multiple of 16)
    samples_per_case: int = 4  # patches drawn from each training case per epoch
    positive_fraction: float = 0.5  # share of patches centred on tumour
    mirror_fraction: float = 0.25  # share centred on the contralateral mirror of the tumour (hard negatives)
    # the rest (1 - positive - mirror) is centred on other body voxels
    learning_rate: float = 1e-3  # Adam peak: linear warm-up, then cosine decay to 1/20 over the epochs
    warmup_epochs: int = 3  # V-Net epochs of linear learning-rate warm-up (capped at epochs - 1)
    classifier_learning_rate: float = 5e-4
    classifier_batch_size: int = 16
    weight_decay: float = 1e-5
    seed: int = 0
    val_fraction: float = 0.15  # used when cases.csv has no split column
    test_fraction: float = 0.15
    device: str = "cpu"
    threads: int | None = None  # CPU threads (default: all available)
    max_minutes: float | None = None  # wall-clock budget; both stages stop early to respect it
    pretrained_classifier: str | None = None  # local ResNet-50 weights file (weights_only load)
    augment: bool = True
    save_validation_masks: bool = True

    def validate(self) -> "TrainingParameters":
        if self.epochs < 1 or self.classifier_epochs < 0:
            raise RadiologyAIError("--epochs must be at least 1 (and classifier epochs at least 0)")
        if any(int(s) % 16 or int(s) < 16 for s in self.patch_size):
            raise RadiologyAIError(f"patch size must be multiples of 16 (V-Net), got {self.patch_size}")
        if self.selection_window < 1:
            raise RadiologyAIError("selection window must be at least 1 epoch")
        if self.warmup_epochs < 0:
            raise RadiologyAIError("--warmup-epochs must be 0 or more")
        if self.batch_size < 1 or self.samples_per_case < 1 or self.classifier_batch_size < 2:
            raise RadiologyAIError("batch sizes and samples per case must be positive (classifier batch >= 2)")
        if (
            not 0 < self.positive_fraction <= 1
            or not 0 <= self.mirror_fraction < 1
            or self.positive_fraction + self.mirror_fraction > 1
        ):
            raise RadiologyAIError("positive_fraction in (0, 1], mirror_fraction in [0, 1), sum at most 1")
        if not 0 < self.learning_rate < 1 or not 0 < self.classifier_learning_rate < 1:
            raise RadiologyAIError("learning rates must be in (0, 1)")
        if self.max_minutes is not None and self.max_minutes <= 0:
            raise RadiologyAIError("--max-minutes must be positive")
        if self.pretrained_classifier and not Path(self.pretrained_classifier).is_file():
            raise RadiologyAIError(f"pretrained weights {self.pretrained_classifier}: no such file")
        return self


@dataclass
class TrainingResult:
    output_dir: Path
    metrics: dict
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0


class _Clock:
    def __init__(self, max_minutes: float | None):
        self.start = time.perf_counter()
        self.budget = None if max_minutes is None else 60.0 * max_minutes

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def past(self, fraction: float) -> bool:
        return self.budget is not None and self.elapsed() > fraction * self.budget


@dataclass
class _StageInputs:
    """What both training stages work from: the preprocessed cases, the run's settings, device, staging
    folder, clock."""

    cases: list[dict]
    params: TrainingParameters
    augmentation: AugmentationParameters
    device: str
    staging: Path  # where the per-epoch validation masks go
    clock: _Clock

    def split(self, name: str) -> list[dict]:
        return [c for c in self.cases if c["split"] == name]


@dataclass
class _StageOutput:
    """A trained stage: its best epoch's weights, its summary (metrics.json) and its rows of history.csv and
    validation_predictions.csv."""

    state: dict
    summary: dict
    history: list[dict]
    validation_rows: list[dict]


def train(
    dataset_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    params: TrainingParameters | None = None,
    preprocessing: PreprocessingParameters | None = None,
    segmentation: SegmentationNetworkParameters | None = None,
    augmentation: AugmentationParameters | None = None,
    slices: SliceParameters | None = None,
    inference: InferenceParameters | None = None,
    classification: ClassificationNetworkParameters | None = None,
    progress: ProgressCallback | None = None,
    overwrite: bool = False,
) -> TrainingResult:
    """Train both networks on a dataset folder and write the model package to ``output_dir``.

    A non-empty ``output_dir`` is refused unless ``overwrite``, which replaces only an earlier
    RadiologyAI run's files there (and removes those of an earlier training it does not write again).
    """
    params = (params or TrainingParameters()).validate()
    preprocessing = (preprocessing or PreprocessingParameters()).validate()
    segmentation = segmentation or SegmentationNetworkParameters()
    augmentation = augmentation or AugmentationParameters()
    slices = slices or SliceParameters()
    inference = inference or InferenceParameters()
    progress = progress or no_progress
    clock = _Clock(params.max_minutes)
    device = resolve_device(params.device)
    threads = configure_threads(params.threads)
    build_segmentation_network(segmentation)  # fail fast on a bad architecture
    build_classifier(classification or ClassificationNetworkParameters())

    progress(0.0, "checking the dataset")
    records = load_dataset(dataset_dir)
    splits = stratified_split(records, params.val_fraction, params.test_fraction, params.seed)
    train_diagnoses = {r.diagnosis for r in records if splits[r.case_id] == "train"}
    if set(CLASS_NAMES) - train_diagnoses:
        raise RadiologyAIError(
            f"dataset {dataset_dir}: the training split has no "
            f"{' or '.join(sorted(set(CLASS_NAMES) - train_diagnoses))} "
            "case; both diagnoses are needed"
        )
    seed_everything(params.seed)

    cases = _preprocess_all(records, splits, preprocessing, subprogress(progress, 0.0, 0.08))
    with staged_output_dir(output_dir, command="salivary train", inputs=[dataset_dir], overwrite=overwrite) as staging:
        stage = _StageInputs(cases, params, augmentation, device, staging, clock)
        segmentation_run = _train_segmentation(stage, segmentation, inference, subprogress(progress, 0.08, 0.68))
        cls_params = classification or ClassificationNetworkParameters()
        classification_run = _train_classifier(
            stage, cls_params, slices, preprocessing, subprogress(progress, 0.68, 0.9)
        )
        seg_summary, cls_summary = segmentation_run.summary, classification_run.summary
        history = segmentation_run.history + classification_run.history
        val_rows = segmentation_run.validation_rows + classification_run.validation_rows

        training_info = {
            "dataset": str(Path(dataset_dir).absolute()),
            "cases": {s: sorted(c for c, v in splits.items() if v == s) for s in ("train", "val", "test")},
            "params": json_ready(asdict(params)),
            "augmentation": augmentation.to_dict(),
            "segmentation": seg_summary,
            "classification": cls_summary,
            "device": device,
            "threads": threads,
        }
        config = make_config(preprocessing, segmentation, cls_params, slices, inference, training_info)
        save_model_package(staging, config, segmentation_run.state, classification_run.state)

        progress(0.9, "evaluating the best model on held-out cases")
        from .model_package import load_model_package

        package = load_model_package(staging, device=device)
        eval_split = "test" if any(v == "test" for v in splits.values()) else "val"
        eval_records = [r for r in records if splits[r.case_id] == eval_split]
        table, metrics = evaluate_records(package, eval_records, device, subprogress(progress, 0.9, 0.99))
        metrics["evaluated_on"] = eval_split
        metrics["training_seconds"] = round(clock.elapsed(), 1)
        metrics["segmentation_training"] = seg_summary
        metrics["classification_training"] = cls_summary
        write_json(staging / "metrics.json", metrics)
        import pandas as pd

        write_csv(staging / "test_cases.csv", pd.DataFrame(table))
        write_csv(staging / "history.csv", pd.DataFrame(history))
        write_csv(staging / "validation_predictions.csv", pd.DataFrame(val_rows))
        write_csv(
            staging / "splits.csv",
            pd.DataFrame(
                [{"case_id": r.case_id, "diagnosis": r.diagnosis, "split": splits[r.case_id]} for r in records]
            ),
        )
        plot_history(
            history,
            staging / "history.png",
            {"vnet_lite": "V-Net (lite)", "vnet": "V-Net"}.get(segmentation.architecture, "V-Net"),
            {"resnet50": "ResNet-50", "resnet34": "ResNet-34", "resnet18": "ResNet-18"}.get(
                cls_params.architecture, cls_params.architecture
            ),
        )
    progress(1.0, "training finished")
    return TrainingResult(Path(output_dir), metrics, history, clock.elapsed())


def _preprocess_all(records, splits, preprocessing, progress) -> list[dict]:
    from RadiologyAICommonLib.imageio import read_volume

    cases = []
    for i, record in enumerate(records):
        image = read_volume(record.image, f"case '{record.case_id}' image")
        label = sitk.ReadImage(str(record.label))
        label = sitk.Cast(sitk.NotEqual(label, 0), sitk.sitkUInt8)
        data = preprocess(image, label, preprocessing, what=f"case '{record.case_id}' image {record.image}")
        if float(data["label"].sum()) == 0:
            raise RadiologyAIError(
                f"case '{record.case_id}': the lesion vanishes at {preprocessing.spacing_mm} mm (too small to segment)"
            )
        data.update(case_id=record.case_id, diagnosis=record.diagnosis, split=splits[record.case_id])
        cases.append(data)
        progress((i + 1) / len(records), f"preprocessing {i + 1}/{len(records)}")
    return cases


def _train_segmentation(
    stage: _StageInputs,
    net_params: SegmentationNetworkParameters,
    inference: InferenceParameters,
    progress: ProgressCallback,
) -> _StageOutput:
    """V-Net on random patches of the training cases; each epoch validated on whole volumes; the best epoch kept."""
    import torch
    from monai.losses import DiceCELoss

    params, device = stage.params, stage.device
    train_cases, val_cases = stage.split("train"), stage.split("val")
    history: list[dict] = []
    val_rows: list[dict] = []
    net = build_segmentation_network(net_params).to(device)
    optimizer = torch.optim.Adam(net.parameters(), lr=params.learning_rate, weight_decay=params.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_factor(params.epochs, params.warmup_epochs))
    # Dice on the tumour channel over the whole batch (patches without tumour do not blow it up) + cross-entropy.
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True, include_background=False, batch=True)
    pos, mirror = params.positive_fraction, params.mirror_fraction
    sampler = training_transforms(
        params.patch_size,
        params.samples_per_case,
        pos,
        max(1.0 - pos - mirror, 0.0),
        stage.augmentation,
        params.augment,
        mirror,
    )
    sampling = [sampling_map(c["image"], c["label"]) for c in train_cases] if mirror > 0 else None
    sampler.set_random_state(seed=params.seed)
    rng = np.random.default_rng(params.seed)
    best = {"dice": -1.0, "score": -1.0, "epoch": 0, "state": None}
    recent: list[float] = []
    stale = 0
    steps_per_epoch = math.ceil(len(train_cases) * params.samples_per_case / params.batch_size)
    for epoch in range(1, params.epochs + 1):
        start = time.perf_counter()
        net.train()
        samples = _draw_patches(train_cases, sampling, sampler, rng)
        order = rng.permutation(len(samples))
        losses = []
        for step in range(steps_per_epoch):
            batch = [samples[i] for i in order[step * params.batch_size : (step + 1) * params.batch_size]]
            if not batch:
                break
            images = torch.stack([torch.as_tensor(b["image"]) for b in batch]).to(device)
            labels = torch.stack([torch.as_tensor(b["label"]) for b in batch]).to(device)
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(net(images), labels)
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
            progress(
                ((epoch - 1) + (step + 1) / steps_per_epoch) / params.epochs,
                f"V-Net epoch {epoch}/{params.epochs} loss {np.mean(losses):.3f}",
            )
        scheduler.step()
        val_loss, val_dice, rows = _validate_segmentation(
            net, val_cases, loss_fn, inference, device, epoch, stage.staging, params.save_validation_masks
        )
        val_rows += rows
        # The validation set is small (2 cases in the benchmark), so one epoch's Dice is noisy: select on the
        # running mean of the last `selection_window` epochs, which favours a stable model over a lucky epoch.
        recent.append(val_dice)
        score = float(np.mean(recent[-params.selection_window :]))
        improved = score > best["score"]
        if improved:
            best = {"dice": val_dice, "score": score, "epoch": epoch, "state": copy.deepcopy(net.state_dict())}
            stale = 0
        else:
            stale += 1
        history.append(
            {
                "stage": "segmentation",
                "epoch": epoch,
                "train_loss": float(np.mean(losses)),
                "val_loss": val_loss,
                "val_dice": val_dice,
                "val_dice_selection": score,
                "val_accuracy": None,
                "learning_rate": optimizer.param_groups[0]["lr"],
                "seconds": round(time.perf_counter() - start, 2),
                "best": improved,
            }
        )
        progress(epoch / params.epochs, f"V-Net epoch {epoch}: val Dice {val_dice:.3f} (best {best['dice']:.3f})")
        if stale >= params.patience:
            break
        if stage.clock.past(0.65):
            break
    summary = {
        "best_epoch": best["epoch"],
        "best_val_dice": round(best["dice"], 4),
        "best_val_dice_selection": round(best["score"], 4),
        "epochs_run": epoch,
        "parameters": count_parameters(net),
        "stopped_early": epoch < params.epochs,
    }
    return _StageOutput(best["state"], summary, history, val_rows)


def _draw_patches(train_cases: list[dict], sampling: list | None, sampler, rng: np.random.Generator) -> list[dict]:
    """One epoch's training patches: ``samples_per_case`` from each training case, cases in a random order."""
    samples = []
    for index in rng.permutation(len(train_cases)):
        case = train_cases[index]
        item = {"image": case["image"], "label": case["label"]}
        if sampling is not None:
            item["sampling"] = sampling[index]
        drawn = sampler(item)
        samples.extend(drawn if isinstance(drawn, list) else [drawn])
    return samples


def _lr_factor(epochs: int, warmup: int, floor: float = 0.05):
    """Learning-rate factor per epoch index (0 = first epoch): linear warm-up, then cosine decay to ``floor``.

    Without warm-up this equals ``CosineAnnealingLR(T_max=epochs, eta_min=floor * lr)``.
    """
    warmup = max(0, min(int(warmup), epochs - 1))

    def factor(index: int) -> float:
        if index < warmup:
            return (index + 1) / (warmup + 1)
        t = (index - warmup) / max(epochs - warmup, 1)
        return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * min(t, 1.0)))

    return factor


def _validate_segmentation(net, val_cases, loss_fn, inference, device, epoch, staging, save_masks):
    """Validation loss, mean Dice and per-case rows of one epoch (masks written when ``save_masks``)."""
    import torch
    from monai.inferers import sliding_window_inference

    from .inference import keep_one_component

    net.eval()
    losses, dices, rows = [], [], []
    with torch.inference_mode():
        for case in val_cases:
            image = torch.as_tensor(case["image"])[None].float().to(device)
            roi = tuple(min(int(r), int(s)) for r, s in zip(inference.roi_size, image.shape[2:]))
            logits = sliding_window_inference(image, roi, 1, net, overlap=inference.overlap, mode=inference.blend_mode)
            logits = torch.as_tensor(logits).float()
            label = torch.as_tensor(case["label"])[None].float().to(device)
            losses.append(float(loss_fn(logits, label)))
            predicted = (torch.softmax(logits, dim=1)[0, 1] >= inference.threshold).cpu().numpy()
            probability = torch.softmax(logits, dim=1)[0, 1].cpu().numpy()
            predicted = keep_one_component(predicted, probability, inference.component)  # as predict() will
            truth = case["label"][0].cpu().numpy() > 0.5
            total = predicted.sum() + truth.sum()
            dice = float(2.0 * np.logical_and(predicted, truth).sum() / total) if total else 1.0
            dices.append(dice)
            rows.append(
                {
                    "stage": "segmentation",
                    "epoch": epoch,
                    "case_id": case["case_id"],
                    "diagnosis": case["diagnosis"],
                    "dice": dice,
                    "predicted_volume_ml": float(predicted.sum()) * 8e-3,
                    "probability_malignant": None,
                    "predicted_class": None,
                }
            )
            if save_masks:
                mask = array_to_image(predicted.astype(np.uint8), np.asarray(case["label"].affine))
                write_image(mask, staging / "validation_masks" / f"epoch_{epoch:03d}" / f"{case['case_id']}.nrrd")
    return float(np.mean(losses)), float(np.mean(dices)), rows


def _case_slices(case, mask, spacing, slice_params):
    return lesion_slices(case["image"], mask, spacing, slice_params)


def _train_classifier(
    stage: _StageInputs,
    net_params: ClassificationNetworkParameters,
    slice_params: SliceParameters,
    preprocessing: PreprocessingParameters,
    progress: ProgressCallback,
) -> _StageOutput:
    """ResNet on the axial slices through the true lesions; each epoch validated per patient; the best epoch kept."""
    import torch

    params, device = stage.params, stage.device
    history: list[dict] = []
    val_rows: list[dict] = []
    spacing = float(preprocessing.spacing_mm[0])
    names = list(net_params.class_names)
    train_x, train_y = _training_slices(stage.split("train"), spacing, slice_params, names)
    val_cases = stage.split("val")
    val_inputs = [_case_slices(c, c["label"], spacing, slice_params) for c in val_cases]

    net = build_classifier(net_params)
    pretrained = None
    if params.pretrained_classifier:
        pretrained = load_pretrained_classifier(net, params.pretrained_classifier)
    net.to(device)
    counts = torch.bincount(train_y, minlength=len(names)).float()
    class_weights = (counts.sum() / (len(names) * counts.clamp(min=1))).to(device)
    loss_fn = torch.nn.CrossEntropyLoss(weight=class_weights)
    optimizer = torch.optim.Adam(net.parameters(), lr=params.classifier_learning_rate, weight_decay=params.weight_decay)
    augment = slice_transforms(stage.augmentation, params.augment)
    augment.set_random_state(seed=params.seed + 1)
    rng = np.random.default_rng(params.seed + 1)
    best = {"loss": math.inf, "epoch": 0, "state": copy.deepcopy(net.state_dict()), "accuracy": None}
    stale = 0
    epochs = max(params.classifier_epochs, 0)
    batch = params.classifier_batch_size
    epoch = 0
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        net.train()
        order = rng.permutation(len(train_y))
        losses = []
        n_steps = max(1, len(order) // batch)  # drop a last batch of one (batch norm)
        for step in range(n_steps):
            idx = order[step * batch : (step + 1) * batch] if step < n_steps - 1 else order[step * batch :]
            x = torch.stack([torch.as_tensor(augment(train_x[i])) for i in idx]).float().to(device)
            y = train_y[idx].to(device)
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(net(x), y)
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
            progress(
                ((epoch - 1) + (step + 1) / n_steps) / epochs,
                f"ResNet-50 epoch {epoch}/{epochs} loss {np.mean(losses):.3f}",
            )
        val_loss, val_acc, rows = _validate_classifier(net, val_cases, val_inputs, names, device, epoch)
        val_rows += rows
        improved = val_loss < best["loss"] - 1e-6
        if improved:
            best = {"loss": val_loss, "epoch": epoch, "state": copy.deepcopy(net.state_dict()), "accuracy": val_acc}
            stale = 0
        else:
            stale += 1
        history.append(
            {
                "stage": "classification",
                "epoch": epoch,
                "train_loss": float(np.mean(losses)),
                "val_loss": val_loss,
                "val_dice": None,
                "val_accuracy": val_acc,
                "learning_rate": params.classifier_learning_rate,
                "seconds": round(time.perf_counter() - start, 2),
                "best": improved,
            }
        )
        progress(epoch / epochs, f"ResNet-50 epoch {epoch}: val accuracy {val_acc:.2f}")
        if stale >= params.classifier_patience or stage.clock.past(0.9):
            break
    summary = {
        "best_epoch": best["epoch"],
        "best_val_loss": None if math.isinf(best["loss"]) else round(best["loss"], 4),
        "best_val_accuracy": best["accuracy"],
        "epochs_run": epoch,
        "training_slices": int(len(train_y)),
        "parameters": count_parameters(net),
        "pretrained": pretrained
        and {"file": str(params.pretrained_classifier), "loaded_tensors": pretrained["loaded"]},
    }
    return _StageOutput(best["state"], summary, history, val_rows)


def _training_slices(train_cases: list[dict], spacing: float, slice_params: SliceParameters, names: list[str]):
    """The classifier's training set: the slices through each training case's lesion and their class indices."""
    import torch

    train_x, train_y = [], []
    for case in train_cases:
        x, _ = _case_slices(case, case["label"], spacing, slice_params)
        train_x.append(x)
        train_y += [names.index(case["diagnosis"])] * x.shape[0]
    return torch.cat(train_x), torch.tensor(train_y)


def _validate_classifier(net, val_cases, val_inputs, names, device, epoch):
    """Validation patient log-loss, accuracy and per-case rows of one epoch."""
    import torch

    net.eval()
    losses, correct, rows = [], [], []
    with torch.inference_mode():
        for case, (x, weights) in zip(val_cases, val_inputs):
            if x.shape[0] == 0:
                continue
            probabilities = torch.softmax(net(x.to(device)).float(), dim=1).cpu()
            patient = aggregate(probabilities, weights)
            truth = names.index(case["diagnosis"])
            losses.append(-math.log(max(float(patient[truth]), 1e-7)))
            predicted = int(np.argmax(patient))
            correct.append(predicted == truth)
            rows.append(
                {
                    "stage": "classification",
                    "epoch": epoch,
                    "case_id": case["case_id"],
                    "diagnosis": case["diagnosis"],
                    "dice": None,
                    "predicted_volume_ml": None,
                    "probability_malignant": float(patient[names.index("malignant")]),
                    "predicted_class": names[predicted],
                }
            )
    if not losses:
        return math.nan, math.nan, rows
    return float(np.mean(losses)), float(np.mean(correct)), rows


def evaluate_records(package: ModelPackage, records, device: str = "cpu", progress: ProgressCallback | None = None):
    """Run the whole prediction on dataset cases; per-case rows and summary metrics."""
    from RadiologyAICommonLib.imageio import read_volume

    from .inference import predict

    progress = progress or no_progress
    rows = []
    for i, record in enumerate(records):
        image = read_volume(record.image, f"case '{record.case_id}' image")
        truth = sitk.Cast(sitk.NotEqual(sitk.ReadImage(str(record.label)), 0), sitk.sitkUInt8)
        result = predict(image, package, device, what=f"case '{record.case_id}'")
        row = {"case_id": record.case_id, "diagnosis": record.diagnosis}
        row.update(segmentation_metrics(result.label, truth, f"case '{record.case_id}'"))
        row.update(
            {
                "predicted_class": result.class_name,
                "probability": result.probability,
                "probability_malignant": result.probabilities.get("malignant"),
                "seconds": round(result.seconds, 2),
            }
        )
        rows.append(row)
        progress((i + 1) / max(len(records), 1), f"evaluating {i + 1}/{len(records)}")
    return rows, summarise_rows(rows)


def summarise_rows(rows: list[dict]) -> dict:
    """Summary of a per-case table: segmentation means/SDs and classification metrics."""
    metrics = {"n_cases": len(rows)}
    for key in ("dice", "hd95_mm", "asd_mm"):
        metrics[key] = summarise([r.get(key) for r in rows])
    classified = [r for r in rows if r.get("diagnosis") and r.get("predicted_class")]
    metrics["classification"] = classification_metrics(
        [r["diagnosis"] for r in classified], [r["predicted_class"] for r in classified]
    )
    metrics["classification"]["unclassified"] = len(rows) - len(classified)
    return metrics


def plot_history(
    history: list[dict], path: Path, segmentation_name: str = "V-Net", classifier_name: str = "ResNet-50"
) -> None:
    """history.png: losses and validation metrics per epoch for both stages."""
    from RadiologyAICommonLib.report import new_figure, save_figure

    figure = new_figure(figsize=(11, 4))
    for column, stage, metric, title in (
        (0, "segmentation", "val_dice", f"{segmentation_name} segmentation"),
        (1, "classification", "val_accuracy", f"{classifier_name} classification"),
    ):
        ax = figure.add_subplot(1, 2, column + 1)
        rows = [h for h in history if h["stage"] == stage]
        if rows:
            epochs = [h["epoch"] for h in rows]
            ax.plot(epochs, [h["train_loss"] for h in rows], "o-", label="training loss")
            ax.plot(epochs, [h["val_loss"] for h in rows], "s-", label="validation loss")
            ax2 = ax.twinx()
            ax2.plot(
                epochs,
                [h[metric] for h in rows],
                "^-",
                color="tab:green",
                label="validation " + ("Dice" if metric == "val_dice" else "accuracy"),
            )
            ax2.set_ylim(0, 1.05)
            ax2.set_ylabel("validation " + ("Dice" if metric == "val_dice" else "accuracy"))
            best = [h["epoch"] for h in rows if h["best"]]
            if best:
                ax.axvline(best[-1], color="grey", linestyle=":", label=f"best epoch {best[-1]}")
            lines = ax.get_legend_handles_labels()
            lines2 = ax2.get_legend_handles_labels()
            ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], fontsize=8, loc="upper right")
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
    figure.tight_layout()
    save_figure(figure, path)
