"""Moving activations to the device a measure computes on (torch; imported lazily by the
measures, so that the web process needs no torch).

On CUDA, :func:`to_device` copies in chunks through two pinned staging buffers on a side
stream: while the GPU receives one chunk (DMA), the host copies the next one into the other
pinned buffer (reading a memory map if the rows are one), and the GPU converts the chunk before
to the working dtype on the compute stream. A plain ``tensor.to("cuda")`` from pageable memory
does these one after the other. The calls return before the last copy has landed: work queued
on the current stream afterwards waits for it, and anything it queues (a measure's matrix
products) runs while the caller stages its next block.
"""

from __future__ import annotations

import numpy as np
import torch

CHUNK_BYTES = 1 << 25
"""Host bytes staged per copy on CUDA (32 MiB): large enough to reach the link's bandwidth,
small enough that two chunks in flight overlap well."""


def resolve_device(device: torch.device | str | None) -> torch.device:
    """``device`` as given, or CUDA when there is a GPU, else the CPU."""
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


_NUMPY_DTYPES: dict[torch.dtype, type[np.floating]] = {
    torch.float64: np.float64,
    torch.float32: np.float32,
}


def _numpy_dtype(dtype: torch.dtype) -> type[np.floating]:
    return _NUMPY_DTYPES[dtype]


def to_device(
    rows: np.ndarray, device: torch.device | str, dtype: torch.dtype = torch.float64
) -> torch.Tensor:
    """A new ``dtype`` copy of ``rows`` on ``device``, free to modify. On the CPU one numpy
    conversion; on CUDA the rows travel as stored (float32 is half the bytes of float64) and
    are converted there, chunk by chunk, overlapped as the module docstring says."""
    device = torch.device(device)
    if device.type != "cuda":
        return torch.from_numpy(np.array(rows, dtype=_numpy_dtype(dtype)))
    rows = np.asarray(rows)
    n = rows.shape[0]
    out = torch.empty(rows.shape, dtype=dtype, device=device)
    row_bytes = max(1, rows.itemsize * int(np.prod(rows.shape[1:])))
    step = max(1, CHUNK_BYTES // row_bytes)
    if n <= step:  # one chunk: nothing to overlap
        host = torch.from_numpy(np.ascontiguousarray(rows))
        return out.copy_(host.to(device, non_blocking=False))
    stored = torch.from_numpy(np.ascontiguousarray(rows[:1])).dtype
    shape = (step, *rows.shape[1:])
    convert = stored != dtype
    staging = [torch.empty(shape, dtype=stored, pin_memory=True) for _ in range(2)]
    # Where chunks land before their conversion (when they need one): two, so that one can
    # be converted while the next arrives.
    landed = [torch.empty(shape if convert else 0, dtype=stored, device=device) for _ in range(2)]
    copy_stream = torch.cuda.Stream(device)
    compute = torch.cuda.current_stream(device)
    copied = [torch.cuda.Event() for _ in range(2)]
    converted = [torch.cuda.Event() for _ in range(2)]
    for i, start in enumerate(range(0, n, step)):
        stop, k = min(n, start + step), i % 2
        m = stop - start
        if i >= 2:  # staging[k]'s previous chunk must have left the host
            copied[k].synchronize()
        np.copyto(staging[k].numpy()[:m], rows[start:stop])
        with torch.cuda.stream(copy_stream):
            if convert and i >= 2:  # and landed[k]'s previous chunk been converted
                copy_stream.wait_event(converted[k])
            target = landed[k][:m] if convert else out[start:stop]
            target.copy_(staging[k][:m], non_blocking=True)
            copied[k].record(copy_stream)
        compute.wait_event(copied[k])
        if convert:
            out[start:stop].copy_(landed[k][:m])  # on the compute stream
            converted[k].record(compute)
    return out
