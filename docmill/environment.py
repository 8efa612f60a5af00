"""Models whose fields fall back on environment variables: `<PREFIX><FIELD>`, and for a field
that is itself a model, `<PREFIX><FIELD>__<SUBFIELD>`; names match in any case. Values given
to the constructor win over the environment, and the environment over the defaults.

pydantic-settings did this, but importing it (with asyncio, ssl and its cloud secret
sources) cost every docmill process about 0.1 s of CPU at start: over 10 alternated starts
of `docmill --version` each, median 0.42 s of CPU with it and 0.32 s without (best 0.27 and
0.20).
"""

from __future__ import annotations

import json
import os
import types
import typing
from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import BaseModel, model_validator

_CONTAINERS = (tuple, list, dict, set, frozenset)


class EnvironmentModel(BaseModel):
    """Subclasses set `env_prefix` (e.g. "DOCMILL_")."""

    env_prefix: ClassVar[str] = ""

    @model_validator(mode="before")
    @classmethod
    def _environment_under_given(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        return {**environment_values(cls, cls.env_prefix, os.environ), **data}


def environment_values(model: type[BaseModel], prefix: str, environ: Mapping[str, str]) -> dict[str, Any]:
    """The fields of `model` that `environ` sets, as raw strings for pydantic to validate,
    JSON-decoded for containers and models (as `[3,48,160]` for a tuple)."""
    upper = {key.upper(): value for key, value in environ.items()}
    found: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}".upper()
        if key in upper:
            found[name] = _decoded(upper[key], field.annotation)
        nested = _model_type(field.annotation)
        if nested is not None:
            parts = _nested_values(nested, f"{key}__", upper)
            if parts:
                whole = found.get(name)
                found[name] = {**whole, **parts} if isinstance(whole, dict) else parts
    return found


def _nested_values(model: type[BaseModel], prefix: str, upper: Mapping[str, str]) -> dict[str, Any]:
    """Every variable under `prefix`: the model's fields as environment_values reads them,
    and any other name passed on as it is, so that the model's own rules judge it (a
    misspelt DOCMILL_ENGINE__ option is refused, not ignored)."""
    values = environment_values(model, prefix, upper)
    for key, raw in upper.items():
        name = key[len(prefix):].lower() if key.startswith(prefix) else ""
        if name and "__" not in name and name not in model.model_fields:
            values[name] = raw
    return values


def _decoded(raw: str, annotation: Any) -> Any:
    """`raw` JSON-decoded when the field holds a container or a model (left as it is when it
    is not JSON, so that pydantic's error names the field); else `raw`."""
    if not _is_structured(annotation):
        return raw
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def _is_structured(annotation: Any) -> bool:
    if _is_union(annotation):
        return any(_is_structured(arg) for arg in typing.get_args(annotation) if arg is not type(None))
    origin = typing.get_origin(annotation) or annotation
    return origin in _CONTAINERS or _model_type(annotation) is not None


def _model_type(annotation: Any) -> type[BaseModel] | None:
    """The model a field holds (through `X | None`), or None."""
    if _is_union(annotation):
        models = [_model_type(arg) for arg in typing.get_args(annotation)]
        return next((model for model in models if model is not None), None)
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def _is_union(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType)
