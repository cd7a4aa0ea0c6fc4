"""PyRadiomics parameter files: load safely, validate with PyRadiomics' own schema, hash.

A params file is PyRadiomics' YAML format (sections ``setting``, ``imageType``,
``featureClass``, ``voxelSetting``). It may come from anywhere, so it is read with
``yaml.safe_load`` (no Python objects) and validated with PyRadiomics' pykwalify schema and
its check functions (unknown keys, wrong types, unknown image types / feature classes /
feature names are errors). The validated dictionary and its SHA-256 travel with the
features and the trained model, so a prediction is extracted exactly like the training data.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import yaml

from RadiologyAICommonLib.errors import RadiologyAIError

PARAMS_DIR = Path(__file__).resolve().parent / "params"
DEFAULT_PARAMS_FILE = PARAMS_DIR / "mri_default.yaml"
ALLOWED_SECTIONS = ("setting", "imageType", "featureClass", "voxelSetting")


@dataclass
class RadiomicsParameters:
    """A validated PyRadiomics parameter dictionary, where it came from, and its hash."""

    params: dict
    source: str
    sha256: str

    def as_dict(self) -> dict:
        return copy.deepcopy(self.params)


def params_hash(params: dict) -> str:
    """SHA-256 of the canonical JSON of a params dictionary (key order and file comments do not matter)."""
    text = json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def validate_params(params, source: str = "params") -> RadiomicsParameters:
    """Validate a params dictionary with PyRadiomics' schema; raise RadiologyAIError naming ``source``."""
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise RadiologyAIError(
            f"{source}: a PyRadiomics params file must be a mapping with sections {', '.join(ALLOWED_SECTIONS)}"
        )
    unknown = [str(k) for k in params if k not in ALLOWED_SECTIONS]
    if unknown:
        raise RadiologyAIError(
            f"{source}: unknown section(s) {', '.join(repr(u) for u in unknown)}; "
            f"allowed: {', '.join(ALLOWED_SECTIONS)}"
        )
    import pykwalify.core
    import radiomics

    # pykwalify logs every schema error at ERROR level before raising; the message is reported once, below.
    logging.getLogger("pykwalify").setLevel(logging.CRITICAL)
    schema_file, schema_funcs = radiomics.getParameterValidationFiles()
    try:
        core = pykwalify.core.Core(
            source_data=copy.deepcopy(params), schema_files=[schema_file], extensions=[schema_funcs]
        )
        validated = core.validate(raise_exception=True)
    except Exception as exc:  # pykwalify SchemaError / CoreError, or ValueError/TypeError from radiomics' checks
        raise RadiologyAIError(f"{source}: invalid PyRadiomics parameters: {_schema_message(exc)}") from None
    validated = {k: v for k, v in validated.items() if v is not None} if isinstance(validated, dict) else {}
    return RadiomicsParameters(params=validated, source=source, sha256=params_hash(validated))


def _schema_message(exc: Exception) -> str:
    text = getattr(exc, "msg", None) or str(exc)
    lines = [line.strip(" -") for line in str(text).splitlines() if line.strip(" -")]
    lines = [line for line in lines if "validation failed" not in line.lower()]
    return "; ".join(lines[:5]) or type(exc).__name__


def load_params(path: str | Path | None = None) -> RadiomicsParameters:
    """Load and validate a params YAML file (``None``: the shipped MRI default)."""
    path = Path(path) if path is not None else DEFAULT_PARAMS_FILE
    if not path.is_file():
        raise RadiologyAIError(f"params file {path}: no such file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RadiologyAIError(f"params file {path}: cannot read it ({exc})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RadiologyAIError(f"params file {path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    return validate_params(data, source=f"params file {path}")
