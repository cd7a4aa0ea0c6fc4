"""Model package: round trip, and corrupt / incomplete / incompatible / malicious folders are refused."""

from __future__ import annotations

import json
import pickle

import pytest
import torch

from RadiologyAICommonLib.errors import RadiologyAIError
from SalivarySegLib.model_package import (
    InferenceParameters,
    load_model_package,
    make_config,
    read_config,
    save_model_package,
    sha256_of,
)
from RadiologyAICommonLib.checksums import write_checksums
from SalivarySegLib.networks import (
    ClassificationNetworkParameters,
    SegmentationNetworkParameters,
    build_classifier,
    build_segmentation_network,
    load_pretrained_classifier,
)
from SalivarySegLib.preprocessing import PreprocessingParameters
from SalivarySegLib.slices import SliceParameters

SEG = SegmentationNetworkParameters(base_channels=2)
CLS = ClassificationNetworkParameters(architecture="resnet18")


def write_package(folder, seed=0):
    torch.manual_seed(seed)
    seg, cls = build_segmentation_network(SEG), build_classifier(CLS)
    config = make_config(
        PreprocessingParameters(), SEG, CLS, SliceParameters(), InferenceParameters(), {"note": "test"}
    )
    save_model_package(folder, config, seg.state_dict(), cls.state_dict(), {"dice": {"mean": 0.5}})
    return seg, cls


def test_round_trip_restores_weights_and_settings(tmp_path):
    seg, cls = write_package(tmp_path / "m")
    package = load_model_package(tmp_path / "m")
    for original, loaded in ((seg, package.segmentation_net), (cls, package.classifier)):
        for (name, a), (_, b) in zip(original.state_dict().items(), loaded.state_dict().items()):
            assert torch.equal(a, b), name
    assert not package.segmentation_net.training and not package.classifier.training
    assert package.class_names == ["benign", "malignant"]
    assert package.preprocessing.spacing_mm == (2.0, 2.0, 2.0) and package.preprocessing.hu_min == -400
    assert package.metrics["dice"]["mean"] == 0.5
    config = json.loads((tmp_path / "m" / "config.json").read_text(encoding="utf-8"))
    assert config["weights"]["sha256"] == sha256_of(tmp_path / "m" / "model.pt")
    assert config["segmentation"]["network"]["architecture"] == "vnet_lite"
    # model.pt holds tensors only: it loads in weights-only mode.
    weights = torch.load(tmp_path / "m" / "model.pt", weights_only=True)
    assert set(weights) == {"segmentation", "classification"}


def test_missing_files(tmp_path):
    write_package(tmp_path / "m")
    (tmp_path / "m" / "model.pt").unlink()
    with pytest.raises(RadiologyAIError, match="missing model.pt"):
        load_model_package(tmp_path / "m")
    (tmp_path / "m" / "config.json").unlink()
    with pytest.raises(RadiologyAIError, match="missing config.json"):
        load_model_package(tmp_path / "m")
    with pytest.raises(RadiologyAIError, match="no such folder"):
        load_model_package(tmp_path / "nothing")


def test_corrupt_weights_are_detected(tmp_path):
    write_package(tmp_path / "m")
    path = tmp_path / "m" / "model.pt"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(RadiologyAIError, match="checksum"):
        load_model_package(tmp_path / "m")
    # With checksums redone on purpose, a truncated file still fails cleanly.
    path.write_bytes(bytes(data[:1000]))
    write_checksums(tmp_path / "m", ["config.json", "model.pt"])
    with pytest.raises(RadiologyAIError, match="not a readable PyTorch weights file"):
        load_model_package(tmp_path / "m")


def test_an_edited_config_is_refused(tmp_path):
    """Finding 5: swapped class names flipped benign and malignant; deleting the checksums turned the check off."""
    write_package(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text(encoding="utf-8"))
    config["class_names"] = config["class_names"][::-1]
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    with pytest.raises(RadiologyAIError, match="config.json: checksum does not match checksums.json"):
        load_model_package(tmp_path / "m")
    (tmp_path / "m" / "checksums.json").unlink()
    with pytest.raises(RadiologyAIError, match="checksums.json is missing"):
        load_model_package(tmp_path / "m")


class _Exploit:
    def __reduce__(self):
        import os

        return (os.system, ("echo pwned > pwned.txt",))


def test_pickled_code_is_never_executed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_package(tmp_path / "m")
    path = tmp_path / "m" / "model.pt"
    torch.save({"segmentation": _Exploit(), "classification": {}}, path, pickle_protocol=2)
    config = json.loads((tmp_path / "m" / "config.json").read_text(encoding="utf-8"))
    config["weights"]["sha256"] = sha256_of(path)  # even with matching checksums
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    write_checksums(tmp_path / "m", ["config.json", "model.pt"])
    with pytest.raises(RadiologyAIError, match="not a readable PyTorch weights file"):
        load_model_package(tmp_path / "m")
    assert not (tmp_path / "pwned.txt").exists()
    assert pickle  # the exploit is a real pickle payload


def _rewrite(config_path, text):
    """Edit config.json on purpose, checksums redone: the loader's own checks of the content are what is tested."""
    config_path.write_text(text)
    write_checksums(config_path.parent, ["config.json", "model.pt"])


def test_incompatible_and_malformed_configs(tmp_path):
    write_package(tmp_path / "m")
    config_path = tmp_path / "m" / "config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    _rewrite(config_path, json.dumps({**config, "format_version": 2, "radiologyai_version": "9.0"}))
    with pytest.raises(RadiologyAIError, match=r"format version 2 \(written by RadiologyAI 9.0\).*update RadiologyAI"):
        read_config(tmp_path / "m")
    _rewrite(config_path, json.dumps({**config, "format": "something-else"}))
    with pytest.raises(RadiologyAIError, match="not a SalivarySeg model config"):
        read_config(tmp_path / "m")
    _rewrite(config_path, "{ not json")
    with pytest.raises(RadiologyAIError, match="not valid JSON"):
        read_config(tmp_path / "m")
    bad = json.loads(json.dumps(config))
    bad["segmentation"]["network"]["architecture"] = "os.system"
    _rewrite(config_path, json.dumps(bad))
    with pytest.raises(RadiologyAIError, match="unknown segmentation architecture"):
        load_model_package(tmp_path / "m")
    wider = json.loads(json.dumps(config))
    wider["segmentation"]["network"]["base_channels"] = 4  # weights no longer fit
    _rewrite(config_path, json.dumps(wider))
    with pytest.raises(RadiologyAIError, match="do not fit the architecture"):
        load_model_package(tmp_path / "m")


def test_pretrained_classifier_weights_from_a_local_file(tmp_path):
    torch.manual_seed(1)
    source = build_classifier(CLS)
    state = {f"module.{k}": v for k, v in source.state_dict().items()}  # DataParallel-style names
    state["module.fc.weight"] = torch.zeros(1000, 512)  # an ImageNet head: skipped (shape differs)
    torch.save({"state_dict": state}, tmp_path / "pretrained.pt")
    target = build_classifier(CLS)
    report = load_pretrained_classifier(target, tmp_path / "pretrained.pt")
    assert report["skipped"] == ["fc.weight"] and report["loaded"] == len(state) - 1
    assert torch.equal(target.state_dict()["layer1.0.conv1.weight"], source.state_dict()["layer1.0.conv1.weight"])
    torch.save({"unrelated": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(RadiologyAIError, match="only 0 of"):
        load_pretrained_classifier(build_classifier(CLS), tmp_path / "other.pt")
