"""Settings: DOCMILL_* environment, validated at start, one line per bad variable, secrets masked."""

import pytest

from docmill.cli import main
from docmill.settings import DEFAULT_MODEL_SET, GPU_DEFAULT_MODEL_SET, Settings, mask_url


def test_engine_overrides_cover_every_engine_option(monkeypatch):
    from docmill.options import EngineOptions

    monkeypatch.setenv("DOCMILL_ENGINE__REC_IMAGE_SHAPE", "[3,48,160]")
    monkeypatch.setenv("DOCMILL_ENGINE__DET_USE_DILATION", "true")
    settings = Settings()
    assert set(type(settings.engine).model_fields) == set(EngineOptions.model_fields)
    merged = EngineOptions().merged(settings.engine.as_dict())
    assert merged.rec_image_shape == (3, 48, 160) and merged.det_use_dilation is True
    assert merged.det_thresh == EngineOptions().det_thresh  # unset keeps the default


@pytest.mark.parametrize("name,value,needle", [
    ("DOCMILL_ENGINE__DET_THRESH", "abc", "DOCMILL_ENGINE__DET_THRESH: Input should be a valid number"),
    ("DOCMILL_ENGINE__DET_THRESH", "3", "DOCMILL_ENGINE__DET_THRESH: Input should be less than 1"),
    ("DOCMILL_DEVICE", "gpu", "DOCMILL_DEVICE: Input should be 'auto', 'cpu' or 'cuda'"),
    ("DOCMILL_ENGINE", "det_thresh=0.2", "DOCMILL_ENGINE: Input should be a valid dictionary"),  # not JSON
    ("DOCMILL_ENGINE__DET_THRES", "0.2", "DOCMILL_ENGINE__DET_THRES: Extra inputs are not permitted"),
    ("DOCMILL_BATCH_IMAGES", "0", "DOCMILL_BATCH_IMAGES"),
    ("DOCMILL_WORKER_LOST_AFTER_S", "10", "DOCMILL_WORKER_LOST_AFTER_S: must be more than twice DOCMILL_HEARTBEAT_S"),
])
def test_bad_setting_is_one_line_and_exit_2(monkeypatch, capsys, name, value, needle):
    monkeypatch.setenv(name, value)
    assert main(["config"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0]


def test_a_misspelt_variable_is_named_with_the_setting_it_nearly_spells(monkeypatch, capsys):
    monkeypatch.setenv("DOCMILL_BATCH_IMAGE", "16")
    monkeypatch.setenv("DOCMILL_SECRETS_DIR", "/run/secrets/docmill")  # the images' own, no setting
    assert main(["config"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["docmill: DOCMILL_BATCH_IMAGE is not a setting and is ignored; did you mean DOCMILL_BATCH_IMAGES?"]


@pytest.mark.parametrize("url,masked", [
    ("redis://:pw@h:6379/0", "redis://:***@h:6379/0"),
    ("rediss://user:p%40ss@h/1", "rediss://user:***@h/1"),
    ("redis://h:6379/0", "redis://h:6379/0"),
])
def test_mask_url(url, masked):
    assert mask_url(url) == masked


def test_provider_options_follow_settings():
    from worker.engine.providers import provider_config

    assert "prefer_nhwc" not in dict(provider_config(["CUDAExecutionProvider"], Settings()))["CUDAExecutionProvider"]
    settings = Settings(cuda_conv_algo_search="EXHAUSTIVE", gpu_mem_limit_mb=2048, tensorrt=True, cuda_prefer_nhwc=True)
    config = dict(provider_config(["CUDAExecutionProvider", "CPUExecutionProvider"], settings))
    assert config["CUDAExecutionProvider"]["prefer_nhwc"] == "1"
    assert list(config)[0] == "TensorrtExecutionProvider"
    assert config["TensorrtExecutionProvider"]["trt_engine_cache_path"].endswith("tensorrt")
    assert config["CUDAExecutionProvider"]["cudnn_conv_algo_search"] == "EXHAUSTIVE"
    assert config["CUDAExecutionProvider"]["gpu_mem_limit"] == str(2048 * 1024 * 1024)
    assert config["CUDAExecutionProvider"]["arena_extend_strategy"] == "kSameAsRequested"
    assert provider_config(["CPUExecutionProvider"], settings) == [("CPUExecutionProvider", {})]


def test_ort_threads_sleep_between_runs_unless_asked_to_spin():
    from worker.engine.providers import session_options

    def spinning(settings: Settings) -> str:
        return session_options(settings).get_session_config_entry("session.intra_op.allow_spinning")

    assert spinning(Settings()) == "0"
    assert spinning(Settings(ort_spinning=True)) == "1"


def test_memory_patterns_are_off_on_cpu_only():
    from worker.engine.providers import session_options

    assert session_options(Settings()).enable_mem_pattern is False
    assert session_options(Settings(), on_gpu=True).enable_mem_pattern is True


def test_the_pixel_budget_is_the_default_unless_set():
    from docmill.settings import DEFAULT_PIXEL_BUDGET_MP, Settings

    assert Settings().pixel_budget() == DEFAULT_PIXEL_BUDGET_MP * 1_000_000
    assert Settings(pixel_budget_mp=30).pixel_budget() == 30_000_000


def test_a_gpu_gets_the_fp32_detector_unless_a_set_was_chosen(monkeypatch):
    monkeypatch.delenv("DOCMILL_MODELS", raising=False)
    unset = Settings()
    assert (unset.models_for(False), unset.models_for(True)) == (DEFAULT_MODEL_SET, GPU_DEFAULT_MODEL_SET)
    assert GPU_DEFAULT_MODEL_SET != DEFAULT_MODEL_SET
    assert Settings(models="pp-ocrv4-ch").models_for(True) == "pp-ocrv4-ch"
    monkeypatch.setenv("DOCMILL_MODELS", DEFAULT_MODEL_SET)  # chosen, even though it is the default
    assert Settings().models_for(True) == DEFAULT_MODEL_SET
