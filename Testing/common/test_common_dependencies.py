"""Slicer dependency helper: pip_ensure where Slicer has it, else confirm + pip_install; nothing when satisfied."""

import types

import pytest

from RadiologyAICommonLib import RadiologyAIError
from RadiologyAICommonLib.dependencies import ensure_requirements


@pytest.fixture
def fake_slicer(monkeypatch):
    slicer = pytest.importorskip("slicer")
    calls = []
    answer = {"ok": True}
    util = types.SimpleNamespace(
        confirmOkCancelDisplay=lambda text: calls.append(("confirm", text)) or answer["ok"],
        pip_install=lambda packages: calls.append(("pip_install", list(packages))),
    )
    monkeypatch.setattr(slicer, "util", util, raising=False)
    monkeypatch.delattr(slicer, "packaging", raising=False)
    return slicer, calls, answer


def test_nothing_to_do_when_installed(fake_slicer):
    _, calls, answer = fake_slicer
    ensure_requirements(["numpy", "pandas"], "VesselQuant")
    assert calls == []


def test_confirm_then_pip_install_on_older_slicer(fake_slicer):
    _, calls, answer = fake_slicer
    ensure_requirements(["numpy", "not-a-real-package-abc==1.0"], "HipRadiomics")
    assert calls[0][0] == "confirm" and "not-a-real-package-abc==1.0" in calls[0][1]
    assert calls[1] == ("pip_install", ["not-a-real-package-abc==1.0"])


def test_declined_install_is_a_user_error(fake_slicer):
    _, calls, answer = fake_slicer
    answer["ok"] = False
    with pytest.raises(RadiologyAIError, match="cannot run without"):
        ensure_requirements(["not-a-real-package-abc"], "HipRadiomics")
    assert [c[0] for c in calls] == ["confirm"]


def test_pip_ensure_used_when_available(fake_slicer, monkeypatch):
    slicer, calls, _ = fake_slicer
    monkeypatch.setattr(
        slicer,
        "packaging",
        types.SimpleNamespace(pip_ensure=lambda reqs: calls.append(("ensure", reqs))),
        raising=False,
    )
    ensure_requirements(["not-a-real-package-abc>=2"], "SalivarySeg")
    assert calls == [("ensure", ["not-a-real-package-abc>=2"])]
