"""The backend base module: options from the caller or $FLYHPC_BACKEND_OPTIONS, validated by each backend's
Options; every GPU backend's probe answers without raising where its simulator is missing."""

from __future__ import annotations

import pytest

from flyhpc.backends.base import OPTIONS_ENV, env_options, make_options
from flyhpc.backends.brian2.cuda import Brian2CudaBackend, Brian2CudaOptions
from flyhpc.backends.brian2.cpp import Brian2CppBackend
from flyhpc.backends.brian2.genn import Brian2GeNNBackend, Brian2GeNNOptions
from flyhpc.backends.genn import GeNNBackend, GeNNOptions
from flyhpc.backends.nestgpu.backend import NestGpuBackend, NestGpuOptions
from flyhpc.errors import ConfigError


def test_env_options_pick_the_backend_and_default_to_empty():
    env = {OPTIONS_ENV: '{"genn": {"genn_backend": "single_threaded_cpu"}, "brian2genn": {"use_gpu": false}}'}
    assert env_options("genn", env) == {"genn_backend": "single_threaded_cpu"}
    assert env_options("brian2genn", env) == {"use_gpu": False}
    assert env_options("pytorch", env) == {} and env_options("genn", {}) == {}


@pytest.mark.parametrize("raw, match", [("{genn: 1}", "not valid JSON"), ('["genn"]', "JSON object"),
                                        ('{"genn": 3}', "JSON object")])
def test_env_options_reject_malformed_values(raw, match):
    with pytest.raises(ConfigError, match=match):
        env_options("genn", {OPTIONS_ENV: raw})


def test_make_options_names_the_unknown_key_and_the_valid_ones():
    with pytest.raises(ConfigError, match=r"no option 'use_GPU'; its options: keep_builds, use_gpu"):
        make_options(Brian2GeNNBackend, {"use_GPU": False})
    with pytest.raises(ConfigError, match="its options: none"):
        make_options(Brian2CppBackend, {"threads": 2})
    with pytest.raises(ConfigError, match="genn_backend"):
        make_options(GeNNBackend, {"genn_backend": "opencl"})
    assert make_options(NestGpuBackend, {"worker_cmd": ["python3", "-m", "w"]}).worker_cmd == ("python3", "-m", "w")


def test_backend_reads_its_options_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(OPTIONS_ENV, '{"brian2genn": {"use_gpu": false, "keep_builds": true}}')
    backend = Brian2GeNNBackend(work_root=tmp_path)
    assert backend.options.use_gpu is False and backend.options.keep_builds is True
    explicit = Brian2GeNNBackend(Brian2GeNNBackend.Options(), work_root=tmp_path)
    assert explicit.options.use_gpu is True
    monkeypatch.setenv(OPTIONS_ENV, '{"brian2genn": {"gpu": false}}')
    with pytest.raises(ConfigError, match="no option 'gpu'"):
        Brian2GeNNBackend(work_root=tmp_path)


# -- probes and options ----------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [GeNNBackend, NestGpuBackend, Brian2GeNNBackend, Brian2CudaBackend])
def test_probe_never_raises(cls):
    probe = cls.probe()
    assert probe.ok or probe.reason


def test_options_reject_bad_values():
    with pytest.raises(ConfigError, match="compute_capability"):
        Brian2CudaOptions(compute_capability="sm80")
    with pytest.raises(ConfigError, match="genn_backend"):
        GeNNOptions(genn_backend="opencl")
    with pytest.raises(ConfigError, match="max_attempts"):
        NestGpuOptions(max_attempts=0)
    with pytest.raises(ConfigError, match="use_gpu"):
        Brian2GeNNOptions(use_gpu="no")


def test_a_run_gets_the_precision_it_asks_for_else_the_backends_first():
    caps = GeNNBackend.caps  # ("float64", "float32"): the default is the first, not merely one of them
    assert caps.precision(None) == caps.precision("") == "float64"
    assert caps.precision("float32") == "float32"
    assert NestGpuBackend.caps.precision(None) == "float32"
