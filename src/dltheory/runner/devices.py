"""Devices: which one a run uses, and what to record about it.

A device is an *execution option*, not part of a run's configuration: the same run (same name, same
``config.json``) can be started on a GPU and resumed on a CPU. :func:`resolve_device` turns the user's
``--device`` value into a concrete device string; :func:`device_info` describes it for ``result.json``.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

DEVICE_CHOICES = "auto, cpu, cuda or cuda:N"
PRECISIONS = ("fp32", "tf32")
_PATTERN = re.compile(r"^(auto|cpu|cuda)(:(\d+))?$")


def resolve_device(device: Any = "auto", *, argument: str = "device") -> str:
    """The concrete device to run on, as a string torch understands (``"cpu"``, ``"cuda:0"``, ...).

    Args:
        device: ``"auto"`` (CUDA when torch sees a GPU, else the CPU), ``"cpu"``, ``"cuda"`` (the current
            CUDA device) or ``"cuda:N"``; a :class:`torch.device` is accepted too.
        argument: the name the user gave the value under (``"--device"`` on the command line); error
            messages name it.

    Returns:
        ``"cpu"`` or ``"cuda:N"`` (always with an index, so a run records which card it used).

    Raises:
        TypeError: when ``device`` is not a string or a torch.device.
        ValueError: for a malformed value, or CUDA requested where torch sees none (or too few) GPUs.

    Examples:
        >>> resolve_device("cpu")
        'cpu'
        >>> resolve_device("gpu")
        Traceback (most recent call last):
        ...
        ValueError: device must be auto, cpu, cuda or cuda:N, got 'gpu'
    """
    import torch

    if isinstance(device, torch.device):
        device = str(device)
    if not isinstance(device, str):
        raise TypeError(f"{argument} must be a string ({DEVICE_CHOICES}), got {device!r}")
    match = _PATTERN.match(device.strip().lower())
    if match is None or (match.group(1) != "cuda" and match.group(2)):
        raise ValueError(f"{argument} must be {DEVICE_CHOICES}, got {device!r}")
    kind, index = match.group(1), match.group(3)
    available = torch.cuda.is_available()
    if kind == "auto":
        kind = "cuda" if available else "cpu"
    if kind == "cpu":
        return "cpu"
    if not available:
        raise ValueError(
            f"{argument} {device!r} asks for CUDA, but torch {torch.__version__} sees no CUDA device; "
            f"use --device cpu (or auto)"
        )
    count = torch.cuda.device_count()
    number = int(index) if index is not None else torch.cuda.current_device()
    if number >= count:
        raise ValueError(f"{argument} {device!r}: only {count} CUDA device(s) (cuda:0..cuda:{count - 1})")
    return f"cuda:{number}"


def device_info(device: str) -> dict[str, Any]:
    """What ``result.json`` records about the device a run used: ``{"device": ...}`` plus, on CUDA, the
    card's name and memory, the CUDA version torch was built with and the driver version (when
    ``nvidia-smi`` answers); the CPU model is recorded separately by the experiment runner.

    Args:
        device: a resolved device string (see :func:`resolve_device`).

    Returns:
        A JSON-able dict.
    """
    info: dict[str, Any] = {"device": device}
    if not device.startswith("cuda"):
        return info
    import torch

    index = int(device.split(":", 1)[1]) if ":" in device else torch.cuda.current_device()
    props = torch.cuda.get_device_properties(index)
    info.update(
        gpu=props.name,
        gpu_memory_gib=round(props.total_memory / 2**30, 1),
        cuda=torch.version.cuda,
        torch=torch.__version__,
    )
    driver = _nvidia_driver()
    if driver:
        info["cuda_driver"] = driver
    return info


def _nvidia_driver() -> str | None:
    try:
        done = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    lines = done.stdout.strip().splitlines()
    return lines[0].strip() if done.returncode == 0 and lines else None


@contextmanager
def float32_precision(precision: str = "fp32") -> Iterator[None]:
    """Within the block, float32 matrix products and convolutions on CUDA use ``precision``.

    ``"fp32"`` is full single precision (the default, and what the mean-field theory assumes); ``"tf32"``
    lets NVIDIA tensor cores round the operands to 10 mantissa bits (about 1e-3 relative error per
    product) for several times the throughput. Has no effect on a CPU. The previous settings are restored
    on exit.

    Raises:
        ValueError: for a precision other than ``"fp32"`` or ``"tf32"``.
    """
    import torch

    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    allow = precision == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = allow
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


@contextmanager
def flush_denormals(device: str = "cpu") -> Iterator[bool]:
    """Within the block, a CPU treats subnormal floats (below 1.2e-38 in float32) as zero.

    Deep networks in the ordered phase (Gaussian kernels at hundreds of layers and more) carry
    backward-pass signals that decay into the subnormal range; x86 processors compute with subnormals
    in microcode, 10-100 times slower (a 10,000-layer Gaussian CNN trained 50 times slower per step
    here). Their values are zero for every purpose of training, so flushing them changes no result
    beyond 1e-38 while keeping step times independent of the initialisation. Yields whether flushing is
    active (False on CUDA, or where the CPU does not support it). torch offers no way to read the
    previous setting, so on exit its default (off) is restored.

    Args:
        device: the resolved device of the run; nothing is changed on ``cuda``.
    """
    import torch

    if device.startswith("cuda"):
        yield False
        return
    active = bool(torch.set_flush_denormal(True))
    try:
        yield active
    finally:
        if active:
            torch.set_flush_denormal(False)
