"""`docmill config`: the settings as they take effect, secrets masked.

Engine options are shown with their effective values, not as unset overrides: PaddleOCR's
defaults, then the configured model set's measured defaults (when the set is on this
machine; nothing is fetched), then DOCMILL_ENGINE__* overrides. `models_on_cuda` is the set a
CUDA run loads (Settings.models_for).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from docmill.modelset import MANIFEST_FILE, Manifest, find_local_set
from docmill.options import EngineOptions
from docmill.settings import Settings


def effective_config(settings: Settings) -> dict[str, Any]:
    data = settings.masked_dump()
    data["models_on_cuda"] = settings.models_for(on_gpu=True)
    overrides = settings.engine.as_dict()
    manifest = _local_manifest(settings)
    base = manifest.engine_defaults() if manifest else EngineOptions()
    data["engine"] = base.merged(overrides).model_dump(mode="json")
    layers = ["PaddleOCR defaults"]
    layers.append(f"{manifest.name}@{manifest.version} defaults" if manifest else
                  f"(set {settings.models!r} is not on this machine: its defaults apply when it loads)")
    if overrides:
        layers.append("DOCMILL_ENGINE__* (" + ", ".join(sorted(overrides)) + ")")
    data["engine_layers"] = layers
    return data


def _local_manifest(settings: Settings) -> Manifest | None:
    folder = find_local_set(settings.models, settings.model_cache)
    if folder is None:
        return None
    try:
        return Manifest.model_validate_json((folder / MANIFEST_FILE).read_bytes())
    except ValueError:
        return None


def cmd_config(args: argparse.Namespace, settings: Settings) -> int:
    print(json.dumps(effective_config(settings), indent=2, sort_keys=True))
    return 0
