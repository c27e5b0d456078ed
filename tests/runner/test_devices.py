"""Devices through the runner: resolve_device, RunDir.device, checkpoints across devices, the environment."""

import json

import pytest
import torch

from dltheory.experiments.execute import environment_info, run_experiment
from dltheory.runner.devices import flush_denormals, resolve_device
from dltheory.runner.runs import RunDir
from dltheory.runner.train import train

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only behaviour")


def test_explicit_cpu_and_auto():
    assert resolve_device("cpu") == "cpu"
    assert resolve_device(" CPU ") == "cpu"
    assert resolve_device(torch.device("cpu")) == "cpu"
    assert resolve_device("auto") == ("cuda:0" if torch.cuda.is_available() else "cpu")


@no_cuda
def test_auto_picks_cpu_and_cuda_is_a_clear_error_without_cuda():
    assert resolve_device("auto") == "cpu"
    for value in ("cuda", "cuda:0", "cuda:3"):
        with pytest.raises(ValueError, match=rf"--device '{value}' asks for CUDA.*sees no CUDA device"):
            resolve_device(value, argument="--device")


@pytest.mark.parametrize("value", ["gpu", "cuda:", "cuda:x", "cpu:0", "auto:1", "", "cuda:-1", "mps"])
def test_malformed_devices_name_the_argument(value):
    with pytest.raises(ValueError, match=r"--device must be auto, cpu, cuda or cuda:N, got"):
        resolve_device(value, argument="--device")


def test_non_string_device_is_a_type_error():
    with pytest.raises(TypeError, match="device must be a string"):
        resolve_device(0)


def test_run_dir_device_is_an_execution_option_not_configuration(tmp_path):
    run = RunDir(tmp_path / "r", {"a": 1}, device="cpu")
    assert run.device == "cpu"
    again = RunDir(tmp_path / "r", {"a": 1}, resume=True, device="auto")  # same run, other device
    assert again.device == resolve_device("auto")
    assert again.config == {"a": 1}
    with pytest.raises(ValueError, match="device must be"):
        _ = RunDir(tmp_path / "s", {"a": 1}, device="tpu").device


def test_environment_records_the_device():
    info = environment_info("cpu")
    assert info["device"] == "cpu" and info["cpu_model"]
    assert "gpu_memory_gib" not in info


SUBNORMAL = 1e-40  # below float32's smallest normal number, 1.18e-38


def _product_of_subnormals() -> float:
    return float(torch.tensor([SUBNORMAL], dtype=torch.float32) * torch.tensor([2.0]))


def test_flush_denormals_zeroes_subnormals_inside_and_restores_the_default():
    assert _product_of_subnormals() == pytest.approx(2 * SUBNORMAL, rel=1e-3)  # torch's default: kept
    with flush_denormals("cpu") as active:
        if not active:
            pytest.skip("this CPU cannot flush subnormals (torch.set_flush_denormal returned False)")
        assert _product_of_subnormals() == 0.0
    assert _product_of_subnormals() == pytest.approx(2 * SUBNORMAL, rel=1e-3)


def test_flush_denormals_leaves_cuda_runs_alone():
    with flush_denormals("cuda:0") as active:
        assert active is False
        assert _product_of_subnormals() == pytest.approx(2 * SUBNORMAL, rel=1e-3)


def test_a_cpu_run_flushes_subnormals_and_records_it(tmp_path):
    record = run_experiment("signalprop-phase-diagram", "tiny", out=tmp_path, device="cpu")
    assert record.status == "completed"
    environment = json.loads((record.path / "result.json").read_text())["environment"]
    assert environment["flush_denormal"] is torch.set_flush_denormal(False)  # as supported by this CPU
    assert _product_of_subnormals() == pytest.approx(2 * SUBNORMAL, rel=1e-3)  # restored after the run


def _linear_run(run_dir, steps=6, device=None, interrupt_at=None):
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x = torch.randn(32, 4, generator=torch.Generator().manual_seed(1))
    y = (x[:, 0] > 0).long()

    def get_batch(step):
        if step == interrupt_at:
            raise KeyboardInterrupt("simulated stop")
        return x[step % 4 * 8 : step % 4 * 8 + 8], y[step % 4 * 8 : step % 4 * 8 + 8]

    outcome = train(
        model,
        optimizer,
        get_batch,
        torch.nn.functional.cross_entropy,
        steps=steps,
        run_dir=run_dir,
        checkpoint_every=2,
        log_every=1,
        device=device,
    )
    return model, outcome


class _TagAsCuda:
    """Make torch.save tag every CPU storage as 'cuda:0', as a checkpoint written on a GPU is tagged."""

    def __enter__(self):
        def tag(storage):
            return "cuda:0" if storage.device.type == "cpu" else None

        self.entry = (0, tag, lambda storage, location: None)
        torch.serialization._package_registry.insert(0, self.entry)

    def __exit__(self, *exc):
        torch.serialization._package_registry.remove(self.entry)


@no_cuda
def test_checkpoint_written_from_cuda_resumes_on_cpu(tmp_path):
    """A checkpoint whose tensors are tagged cuda:0 (written on a GPU) resumes on the CPU through
    map_location, and the resumed run ends where an uninterrupted one does."""
    reference, full = _linear_run(RunDir(tmp_path / "full", {"a": 1}), device="cpu")

    run_dir = RunDir(tmp_path / "moved", {"a": 1})
    with _TagAsCuda(), pytest.raises(KeyboardInterrupt):
        _linear_run(run_dir, device="cpu", interrupt_at=5)  # "on the GPU": stopped, checkpoint at step 4
    checkpoint = run_dir.checkpoints / "train.pt"
    with pytest.raises(RuntimeError, match="CUDA"):
        torch.load(checkpoint, weights_only=True)  # without map_location it really needs CUDA
    model, resumed = _linear_run(RunDir(tmp_path / "moved", {"a": 1}, resume=True), device="cpu")
    assert resumed.resumed_from == 4 and resumed.status == "completed"
    assert resumed.history == full.history
    for a, b in zip(reference.parameters(), model.parameters(), strict=True):
        assert torch.equal(a, b) and b.device.type == "cpu"


@needs_cuda
def test_cuda_run_resumes_on_cpu(tmp_path):
    run_dir = RunDir(tmp_path / "r", {"a": 1}, device="cuda")
    with pytest.raises(KeyboardInterrupt):
        _linear_run(run_dir, interrupt_at=5)
    model, resumed = _linear_run(RunDir(tmp_path / "r", {"a": 1}, resume=True, device="cpu"))
    assert resumed.resumed_from == 4 and next(model.parameters()).device.type == "cpu"


@needs_cuda
def test_environment_names_the_card():
    info = environment_info(resolve_device("cuda"))
    assert info["device"].startswith("cuda:") and info["gpu"] and info["cuda"] and info["torch"]
