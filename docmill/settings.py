"""The one settings object: environment variables with the DOCMILL_ prefix, validated at start.

No other module reads the environment on its own; everything takes a `Settings`.
`docmill config` prints it with secrets masked (see `masked_dump`).
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_MODEL_SET = "pp-ocrv4-ch"

Device = Literal["auto", "cpu", "cuda"]


class EngineOverrides(BaseSettings):
    """DOCMILL_ENGINE__<OPTION> overrides of EngineOptions; None leaves the manifest's value."""

    model_config = SettingsConfigDict(extra="forbid")

    det_limit_side_len: int | None = None
    det_limit_type: Literal["max", "min", "resize_long"] | None = None
    det_thresh: float | None = None
    det_box_thresh: float | None = None
    det_unclip_ratio: float | None = None
    det_max_candidates: int | None = None
    det_use_dilation: bool | None = None
    det_score_mode: Literal["fast", "slow"] | None = None
    det_batch_size: int | None = None
    use_angle_cls: bool | None = None
    cls_thresh: float | None = None
    cls_batch_size: int | None = None
    rec_batch_size: int | None = None
    drop_score: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.model_dump().items() if v is not None}


class Settings(BaseSettings):
    """Everything an operator can set. Env: DOCMILL_<FIELD>, nested with `__`."""

    model_config = SettingsConfigDict(
        env_prefix="DOCMILL_", env_nested_delimiter="__", extra="ignore", validate_default=True
    )

    models: str = Field(DEFAULT_MODEL_SET, description="model set: preset name, folder or s3:// URI")
    cache_dir: Path = Field(default_factory=lambda: Path.home() / ".cache" / "docmill")
    device: Device = "auto"
    intra_op_threads: int = Field(0, ge=0, description="ONNXRuntime intra-op threads; 0 = ORT default")
    inter_op_threads: int = Field(0, ge=0)
    graph_optimization: Literal["disable", "basic", "extended", "all"] = "all"
    batch_images: int = Field(8, ge=1, le=256, description="images per engine batch")
    max_image_bytes: int = Field(64 * 1024 * 1024, ge=1)
    max_image_pixels: int = Field(100_000_000, ge=1)
    broker_url: SecretStr = SecretStr("redis://127.0.0.1:6379/0")
    s3_endpoint_url: str | None = None
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "WARNING"
    engine: EngineOverrides = Field(default_factory=EngineOverrides)

    @field_validator("cache_dir")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser()

    @property
    def model_cache(self) -> Path:
        return self.cache_dir / "models"

    def masked_dump(self) -> dict[str, Any]:
        """Settings as plain data with every password or secret replaced by ***."""
        data = self.model_dump(mode="json")
        data["broker_url"] = mask_url(self.broker_url.get_secret_value())
        if data.get("s3_endpoint_url"):
            data["s3_endpoint_url"] = mask_url(data["s3_endpoint_url"])
        data["cache_dir"] = str(self.cache_dir)
        return data


_USERINFO = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:/@]*):(?P<pw>[^@/]*)@", re.I)


def mask_url(url: str) -> str:
    """redis://user:secret@host -> redis://user:***@host (URLs without a password unchanged)."""
    return _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:***@", url)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
