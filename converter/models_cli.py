"""`docmill models import`, `docmill models list` and `docmill models fp16`.

Progress goes to stderr; stdout carries only the result (the set's folder, or the table), so
scripts can use `dir=$(docmill models import --preset pp-ocrv4-ch)`.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from pathlib import Path
from typing import Callable, Mapping, TypeVar

from docmill.errors import EXIT_FAILED, UsageError
from docmill.modelset import LATEST_FILE, MANIFEST_FILE, STAGES, Manifest, ModelSet, ModelSetError, publish
from docmill.settings import Settings
from docmill.storage import StorageError, open_storage, require_writable

from converter.modelset_build import SetRecipe, Source, check_set_name, stderr_progress
from converter.presets import PRESETS, cached_preset, ensure_model_set, import_preset
from converter.sources import SourceError

R = TypeVar("R")

_CUSTOM_FLAGS = ("det", "cls", "rec", "dict", "name")


def cmd_import(args: argparse.Namespace, settings: Settings) -> int:
    """Import a preset or a custom set into the model cache, optionally publish it, and print
    its folder. Fetch and build failures print one line and exit 1."""
    recipe = recipe_from_args(args, PRESETS, SetRecipe)
    check_publish(args.publish, settings)
    try:
        folder = _import(recipe, settings, args.force)
        if args.publish:
            publish_set(folder, args.publish, settings)
    except (SourceError, ModelSetError, StorageError) as exc:
        print(f"docmill: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(folder)
    return 0


def recipe_from_args(args: argparse.Namespace, presets: Mapping[str, R],
                     custom: Callable[..., R]) -> R:
    """A preset from `presets`, or `custom(name=, det=, cls=, rec=, dictionary=)` built from
    --det/--cls/--rec[/--dict] --name; the flag checks `models import` and `convert` share."""
    given = [flag for flag in _CUSTOM_FLAGS if getattr(args, flag)]
    if args.preset:
        if given:
            raise UsageError(f"--preset cannot be combined with --{', --'.join(given)}")
        if args.preset not in presets:
            raise UsageError(f"unknown preset {args.preset!r}; presets: {', '.join(presets)}")
        return presets[args.preset]
    missing = [flag for flag in ("det", "cls", "rec", "name") if not getattr(args, flag)]
    if missing:
        raise UsageError(f"give --preset ({', '.join(presets)}) or a custom set; "
                         f"missing --{', --'.join(missing)}")
    if args.name in presets:
        raise UsageError(f"--name {args.name} is a preset's name; choose another for a custom set")
    try:
        check_set_name(args.name)
    except ModelSetError as exc:
        raise UsageError(str(exc)) from exc
    return custom(name=args.name, det=Source(args.det), cls=Source(args.cls), rec=Source(args.rec),
                  dictionary=Source(args.dict) if args.dict else None)


def _import(recipe: SetRecipe, settings: Settings, force: bool) -> Path:
    """A preset built from its pinned files is reused without fetching anything. A custom set
    is always rebuilt: its sources may have changed, and publishing an unchanged set is a no-op."""
    cached = cached_preset(recipe, settings.model_cache) if recipe is PRESETS.get(recipe.name) else None
    if cached is not None and not force:
        stderr_progress(f"{recipe.name}: already cached (--force rebuilds it)")
        return cached
    return import_preset(recipe, settings)


def check_publish(dest: str | None, settings: Settings) -> None:
    """A --publish destination that cannot take a set (a missing bucket, no permission) is
    refused with one line before any fetch, conversion or gate, not after them."""
    if dest:
        require_writable(dest, settings, "--publish", "the model set")


def publish_set(folder: Path, dest: str, settings: Settings) -> None:
    """Publish a verified set to DEST/<set>/<version>/: a local folder or an s3:// prefix."""
    try:
        storage = open_storage(dest, settings)
    except ValueError as exc:
        raise UsageError(f"--publish {dest}: {exc}") from exc
    model_set = ModelSet.load(folder)
    target = publish(folder, model_set.manifest, dest, storage, stderr_progress)
    stderr_progress(f"{model_set.name}: published to {target}/")


def cmd_fp16(args: argparse.Namespace, settings: Settings) -> int:
    """Build `<set>-fp16` beside SET, gated against SET where float16 is really computed,
    optionally publish it, and print its folder. Without such a device: one line, exit 2,
    before any work (an ungated set is never built where `--models` could name it)."""
    from converter.fp16 import Fp16Unavailable, GateFailed, gate_device, gated_fp16_set, require_converter

    gate_images = _gate_images(args.gate_images)
    if not (math.isfinite(args.max_cer) and 0 <= args.max_cer < 1):
        raise UsageError(f"--max-cer {args.max_cer}: give a character error rate from 0 to 1, e.g. 0.002")
    check_publish(args.publish, settings)
    try:
        require_converter()
        device = gate_device()
    except Fp16Unavailable as exc:
        raise UsageError(str(exc)) from exc
    try:
        fp32_folder = ensure_model_set(args.set, settings)
        with tempfile.TemporaryDirectory(prefix="docmill-fp16-") as scratch:
            folder, _ = gated_fp16_set(ModelSet.load(fp32_folder), settings, fp32_folder.parent.parent,
                                       Path(scratch), device, gate_images, args.max_cer, stderr_progress)
        if args.publish:
            publish_set(folder, args.publish, settings)
    except (SourceError, ModelSetError, StorageError, GateFailed) as exc:
        print(f"docmill: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(folder)
    return 0


def _gate_images(value: str | None) -> Path | None:
    if value is None:
        return None
    if not Path(value).is_dir():
        raise UsageError(f"--gate-images {value}: not a folder")
    return Path(value)


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    """Print a table of the sets in the model cache (manifests are read, files not verified)."""
    cache = settings.model_cache
    rows = [_list_row(path) for path in sorted(cache.glob(f"*/*/{MANIFEST_FILE}"))]
    if not rows:
        print(f"docmill: no model sets in {cache}; import one with "
              "`docmill models import --preset pp-ocrv4-ch`", file=sys.stderr)
        return 0
    header = ["SET", "VERSION", "LATEST", "DET", "CLS", "REC", "DICT", "TOOLS"]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    return 0


def _list_row(manifest_path: Path) -> list[str]:
    version_dir = manifest_path.parent
    pointer = version_dir.parent / LATEST_FILE
    latest = "*" if pointer.is_file() and pointer.read_text("utf-8").strip() == version_dir.name else ""
    try:
        manifest = Manifest.model_validate_json(manifest_path.read_bytes())
    except ValueError:
        return [version_dir.parent.name, version_dir.name, latest, "", "", "", "", "invalid manifest"]
    sizes = [f"{entry.bytes / 1e6:.1f}MB" if entry else "-"
             for entry in (manifest.models.get(stage) for stage in STAGES)]
    tools = " ".join(f"{tool}={version}" for tool, version in sorted(manifest.tools.items()))
    return [manifest.name, manifest.version, latest, *sizes, str(manifest.dictionary.entries), tools]
