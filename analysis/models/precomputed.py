"""Activations computed elsewhere, attached to a dataset as if RepLens had extracted them.

A file holds one or more layers, each an ``n × d`` array, and optionally the sample ids its
rows belong to:

- ``.npy``: one array (the layer ``embedding``); rows in the dataset's order.
- ``.npz``: every 2-D array is a layer named by its key; a 1-D ``ids`` array names the rows.
- ``.safetensors``: every tensor is a layer; ``ids`` may be given in the header metadata as a
  JSON list of strings.
- ``.parquet``: every list column (fixed or variable size, all rows of one length) is a layer;
  an ``id`` column names the rows.

Rows with ids are matched to the dataset's samples by id (every sample exactly once); rows
without ids must be as many as the samples, in the dataset's order.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from analysis.data.datasets import real_values
from analysis.errors import InputError

SUFFIXES = (".npy", ".npz", ".safetensors", ".parquet")
SINGLE_LAYER = "embedding"


@dataclass
class Precomputed:
    layers: dict[str, np.ndarray]  # name → n × d float32, file order
    ids: np.ndarray | None  # n strings, or None (rows in the dataset's order)

    def aligned_to(self, dataset_ids: np.ndarray) -> dict[str, np.ndarray]:
        """The layers with rows reordered to the dataset's sample order."""
        n = len(dataset_ids)
        rows = len(next(iter(self.layers.values())))
        if self.ids is None:
            if rows != n:
                raise InputError(
                    f"the file has {rows} rows and the dataset {n} samples; without sample ids "
                    "they must be as many, in the dataset's order"
                )
            return self.layers
        position = {str(sample): i for i, sample in enumerate(self.ids)}
        if len(position) != len(self.ids):
            raise InputError("the file's sample ids are not unique")
        missing = [str(s) for s in dataset_ids if str(s) not in position]
        extra = sorted(set(position) - {str(s) for s in dataset_ids})
        if missing or extra:
            raise InputError(
                f"the file's sample ids do not match the dataset's: {len(missing)} samples "
                f"have no row (e.g. {', '.join(missing[:3]) or '-'}), {len(extra)} rows name "
                f"no sample (e.g. {', '.join(extra[:3]) or '-'})"
            )
        order = np.array([position[str(s)] for s in dataset_ids])
        return {name: values[order] for name, values in self.layers.items()}


def read_precomputed(path: str | Path, filename: str) -> Precomputed:
    """Read and check a file of precomputed activations (by its extension)."""
    suffix = PurePosixPath(filename.lower()).suffix
    if suffix == ".npy":
        found = Precomputed({SINGLE_LAYER: _load_npy(path)}, None)
    elif suffix == ".npz":
        found = _read_npz(path)
    elif suffix == ".safetensors":
        found = _read_safetensors(path)
    elif suffix == ".parquet":
        found = _read_parquet(path)
    else:
        raise InputError(f"unsupported activations file {filename!r}: upload {', '.join(SUFFIXES)}")
    return _checked(found)


def _checked(found: Precomputed) -> Precomputed:
    if not found.layers:
        raise InputError("the file holds no n × d arrays")
    counts = {name: len(values) for name, values in found.layers.items()}
    if len(set(counts.values())) != 1:
        raise InputError(f"every layer needs the same number of rows; found {counts}")
    layers = {}
    for name, values in found.layers.items():
        if values.ndim != 2 or values.shape[0] == 0 or values.shape[1] == 0:
            raise InputError(f"layer {name!r} must be an n × d array, got shape {values.shape}")
        layers[name] = real_values(values, f"layer {name!r}")
    ids = None if found.ids is None else np.asarray(found.ids).astype(str)
    if ids is not None and ids.shape != (next(iter(counts.values())),):
        raise InputError(f"{len(ids)} sample ids for {next(iter(counts.values()))} rows")
    return Precomputed(layers, ids)


def _load_npy(path: str | Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as err:
        raise InputError.caused_by(
            "not a readable .npy array (object arrays are refused)", err
        ) from None
    except (OSError, EOFError) as err:
        raise InputError.caused_by("not a readable .npy array", err) from None


def _read_npz(path: str | Path) -> Precomputed:
    try:
        with np.load(path, allow_pickle=False) as z:
            if not isinstance(z, np.lib.npyio.NpzFile):
                raise InputError("not an .npz archive: save the layers with np.savez")
            arrays = {k: z[k] for k in z.files}
    except InputError:
        raise
    except Exception as err:  # zipfile, zlib and pickle refusals
        raise InputError.caused_by("not a readable .npz archive", err) from None
    ids = arrays.pop("ids", None)
    return Precomputed(arrays, ids)


def _read_safetensors(path: str | Path) -> Precomputed:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="numpy") as f:
            metadata = f.metadata() or {}
            layers = {name: f.get_tensor(name) for name in f.keys()}
    except (SafetensorError, OSError, ValueError) as err:
        raise InputError.caused_by("not a valid .safetensors file", err) from None
    ids = None
    if "ids" in metadata:
        try:
            ids = json.loads(metadata["ids"])
        except json.JSONDecodeError:
            raise InputError("the 'ids' metadata must be a JSON list of strings") from None
        if not isinstance(ids, list):
            raise InputError("the 'ids' metadata must be a JSON list of strings")
    return Precomputed(layers, None if ids is None else np.array(ids, dtype=str))


def _read_parquet(path: str | Path) -> Precomputed:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as err:
        raise InputError.caused_by("not a readable .parquet file", err) from None
    layers: dict[str, np.ndarray] = {}
    ids: np.ndarray | None = None
    for name in table.column_names:
        column = table.column(name).combine_chunks()
        if name == "id":
            ids = np.array(column.to_pylist(), dtype=str)
        elif pa.types.is_list(column.type) or pa.types.is_fixed_size_list(column.type):
            if column.null_count:
                raise InputError(f"column {name!r} has empty rows")
            lengths = set(pc.list_value_length(column).to_pylist())
            if len(lengths) != 1:
                raise InputError(f"column {name!r} has rows of different lengths {sorted(lengths)}")
            flat = column.flatten().to_numpy(zero_copy_only=False)
            layers[name] = flat.reshape(len(column), lengths.pop())
    return Precomputed(layers, ids)
