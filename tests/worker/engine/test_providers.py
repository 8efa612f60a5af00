"""Provider choice: the CUDA probe is made only where the NVIDIA driver could run it."""

import subprocess
import sys

import pytest

from worker.engine.providers import CPU, DeviceUnavailable, cuda_driver_loads, resolve_providers

no_driver = pytest.mark.skipif(cuda_driver_loads(), reason="an NVIDIA driver library loads here")


def test_driver_check_tells_a_loadable_library_from_a_missing_one():
    assert not cuda_driver_loads(("libdocmill-no-such-driver.so.1",))
    if sys.platform.startswith("linux"):
        assert cuda_driver_loads(("libdocmill-no-such-driver.so.1", "libc.so.6"))


@no_driver
def test_without_a_driver_auto_is_cpu_and_cuda_is_refused_with_advice():
    assert resolve_providers("auto") == [CPU]
    with pytest.raises(DeviceUnavailable, match="use --device auto or cpu"):
        resolve_providers("cuda")


@no_driver
def test_without_a_driver_no_cuda_provider_is_loaded_to_find_out():
    """The probe builds its one-node model with onnx: a fresh process that decided without
    the probe has not imported onnx (nor paid for loading ORT's CUDA provider)."""
    code = ("import sys; from worker.engine.providers import cuda_works; "
            "print(cuda_works(), 'onnx' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
