"""Presets: pinned, valid, resolved from the cache without fetching when current, and (with the
registries) really importable with the dictionaries their rec models expect."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from converter.modelset_build import build_model_set
from converter.presets import PP_OCRV4_CH, PRESETS, cached_preset, ensure_model_set
from converter.sources import parse_source
from docmill.modelset import ModelSet, ModelSetError, SourceProvenance, parse_dictionary
from docmill.options import EngineOptions
from docmill.settings import DEFAULT_MODEL_SET, Settings

from .conftest import SHARED, TINY_DICT

SHA256 = re.compile(r"^[0-9a-f]{64}$")


def test_every_preset_file_is_pinned_and_comes_from_a_registry() -> None:
    assert list(PRESETS) == ["pp-ocrv4-ch", "pp-ocrv4-en", "pp-ocrv5", "pp-ocrv6", "pp-ocrv6-int8det"]
    assert PRESETS[DEFAULT_MODEL_SET].ori is not None  # the default set carries page orientation
    assert PRESETS["pp-ocrv6-int8det"].pins() == PRESETS["pp-ocrv6"].pins()  # made from its files
    for name, preset in PRESETS.items():
        assert preset.name == name
        sources = [preset.det, preset.cls, preset.rec] + [s for s in (preset.dictionary, preset.ori) if s]
        for source in sources:
            assert SHA256.match(source.sha256), (name, source.uri)
            assert parse_source(source.uri).kind in ("pypi", "npm")
        EngineOptions().merged(preset.defaults)  # raises on an unknown or invalid option


def _settings(tmp_path: Path) -> Settings:
    return Settings(cache_dir=tmp_path / "cache")


def _build_as(preset_name: str, tiny_models: dict[str, Path], settings: Settings,
              defaults: dict | None = None, pins: dict[str, str] | None = None) -> Path:
    """A tiny set in the cache under a preset's name, recording `pins` as its sources' sha256
    (the preset's own pins by default), as an import of that preset would."""
    preset = PRESETS[preset_name]
    pins = pins or {stage: getattr(preset, stage).sha256 for stage in ("det", "cls", "rec")}
    provenance = {stage: SourceProvenance(uri=getattr(preset, stage).uri, sha256=pins[stage])
                  for stage in ("det", "cls", "rec")}
    provenance["dict"] = provenance["rec"]
    return build_model_set(preset_name, tiny_models["det"], tiny_models["cls"], tiny_models["rec"],
                           TINY_DICT, provenance, preset.defaults if defaults is None else defaults,
                           settings.model_cache)


def test_a_cached_preset_is_used_without_fetching(tiny_models, tmp_path) -> None:
    settings = _settings(tmp_path)
    folder = _build_as("pp-ocrv4-ch", tiny_models, settings)
    assert cached_preset(PP_OCRV4_CH, settings.model_cache) == folder
    assert ensure_model_set("pp-ocrv4-ch", settings) == folder
    assert not (settings.cache_dir / "downloads").exists()


def test_a_cached_preset_with_other_files_or_defaults_is_stale(tiny_models, tmp_path) -> None:
    settings = _settings(tmp_path)
    _build_as("pp-ocrv4-ch", tiny_models, settings, defaults={"drop_score": 0.4})
    assert cached_preset(PP_OCRV4_CH, settings.model_cache) is None
    pins = {stage: "0" * 64 for stage in ("det", "cls", "rec")}
    _build_as("pp-ocrv4-ch", tiny_models, settings, pins=pins)
    assert cached_preset(PP_OCRV4_CH, settings.model_cache) is None
    assert cached_preset(dataclasses.replace(PP_OCRV4_CH, defaults={"drop_score": 0.4}),
                         settings.model_cache) is None  # LATEST is now the build with other pins


def test_folders_and_cached_names_resolve_and_unknown_refs_list_the_presets(tiny_models, tmp_path) -> None:
    settings = _settings(tmp_path)
    folder = build_model_set("mine", tiny_models["det"], tiny_models["cls"], tiny_models["rec"],
                             TINY_DICT, {s: SourceProvenance(uri="x", sha256="0" * 64)
                                         for s in ("det", "cls", "rec")}, {}, settings.model_cache)
    assert ensure_model_set(str(folder), settings) == folder
    assert ensure_model_set(str(folder.parent), settings) == folder
    assert ensure_model_set("mine", settings) == folder
    assert ensure_model_set(f"mine@{folder.name}", settings) == folder
    with pytest.raises(ModelSetError, match="preset: pp-ocrv4-ch, pp-ocrv4-en, pp-ocrv5"):
        ensure_model_set("mine@0000", settings)
    with pytest.raises(ModelSetError, match="'nothing' not found"):
        ensure_model_set("nothing", settings)


# --- with the registries ------------------------------------------------------------------------

EXPECTED_ENTRIES = {"pp-ocrv4-ch": 6623, "pp-ocrv4-en": 95, "pp-ocrv5": 18383, "pp-ocrv6": 18708,
                    "pp-ocrv6-int8det": 18708}


@pytest.mark.models
@pytest.mark.parametrize("name", list(PRESETS))
def test_each_preset_imports_into_a_verified_set(name: str) -> None:
    """Uses the user's cache: the same sets the worker tests and `docmill run` use."""
    settings = Settings()
    model_set = ModelSet.load(ensure_model_set(name, settings, progress=lambda message: None))
    manifest = model_set.manifest
    assert len(model_set.characters) == manifest.dictionary.entries == EXPECTED_ENTRIES[name]
    assert manifest.models["rec"].outputs[0].shape[-1] == EXPECTED_ENTRIES[name] + 2
    preset = PRESETS[name]
    assert {s: m.source.sha256 for s, m in manifest.models.items()} == preset.pins()
    assert model_set.has("ori") == (preset.ori is not None)
    assert manifest.defaults == preset.defaults


@pytest.mark.models
@pytest.mark.shared
@pytest.mark.parametrize("name, shared_dict", [
    ("pp-ocrv4-en", "paddleocr/ppocr/utils/en_dict.txt"),
    ("pp-ocrv4-ch", "paddleocr/ppocr/utils/ppocr_keys_v1.txt"),
    ("pp-ocrv5", "paddleocr/ppocr/utils/dict/ppocrv5_dict.txt"),
])
def test_preset_dictionaries_equal_paddleocrs_own(name: str, shared_dict: str) -> None:
    path = SHARED / "data" / shared_dict
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    model_set = ModelSet.load(ensure_model_set(name, Settings(), progress=lambda message: None))
    assert model_set.characters == parse_dictionary(path.read_text("utf-8"))
