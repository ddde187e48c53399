"""Where a measure that has both a numpy and a torch path computes (torch-free, so that the
web process can import the measures).

The numpy path is the reference and, on a CPU, as fast as torch's or faster (numpy's BLAS
computes XᵀX by SYRK; torch's CPU matmul does not). The torch path exists for GPUs: the same
code runs on any torch device, which is how the tests check it against the numpy path on a
machine without one.
"""

from __future__ import annotations


def torch_device(device: str | None) -> str | None:
    """The device a measure set to ``device`` runs its torch path on, or None for its numpy
    path: a CUDA device when one is named, or when none is named and there is a GPU."""
    if device is None:
        try:
            import torch
        except ImportError:  # a process without the model runtime computes on the CPU
            return None
        return "cuda" if torch.cuda.is_available() else None
    return device if device.startswith("cuda") else None
