"""Dataset readers: every upload format becomes one canonical :class:`DatasetArrays`.

Formats:

- ``.npz``: ``x`` (n × …) required; optional ``y`` (n labels, integers or strings), ``ids``
  (n unique ids), ``label_names`` (one name per integer class); every other 1-D array of length
  n is a metadata column. Loaded with ``allow_pickle=False``.
- ``.zip`` of images in class folders (``cat/001.png``). Images are converted to one mode
  (grey unless some are colour) and resized to their most common size, at most 256 px a side.
- ``.csv`` with a header: ``id`` and ``label`` (or ``y``) columns are optional; numeric columns
  are the features; other columns are metadata. With a ``text`` column it is a text dataset:
  the texts are the samples and every other column is metadata.
- ``.jsonl``: one JSON object per line with a ``text`` string; ``id`` and ``label`` are
  optional; every other key (present on every line, a string or a number) is a metadata column.

Image arrays are stored as ``n × C × H × W`` float32 in [0, 1]; texts as ``n`` unicode strings.
"""

from __future__ import annotations

import csv
import json
import struct
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any

import numpy as np

from analysis.data.archives import zip_members
from analysis.errors import InputError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
MODALITIES = ("image", "tabular", "vector", "text")
TEXT_COLUMN = "text"


@dataclass
class DatasetArrays:
    x: np.ndarray  # float32, n × … (images n × C × H × W in [0, 1]); texts: n unicode strings
    ids: np.ndarray  # unicode, n unique
    modality: str
    y: np.ndarray | None = None  # int64 class indices
    label_names: list[str] = field(default_factory=list)
    metadata: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.x)

    def label_of(self, i: int) -> str:
        if self.y is None:
            return ""
        k = int(self.y[i])
        return self.label_names[k] if k < len(self.label_names) else str(k)

    def validate(self) -> DatasetArrays:
        n = len(self.x)
        if n == 0:
            raise InputError("the dataset has no samples")
        if self.modality == "text":
            self.x = np.asarray(self.x, dtype=str)
            if self.x.ndim != 1:
                raise InputError("a text dataset holds one text per sample")
        else:
            self.x = real_values(self.x, "x")
        if self.ids.shape != (n,):
            raise InputError(f"ids must be one per sample: {len(self.ids)} ids for {n} samples")
        self.ids = self.ids.astype(str)
        if len(np.unique(self.ids)) != n:
            raise InputError("sample ids must be unique")
        if self.y is not None and self.y.shape != (n,):
            raise InputError(f"y must be one label per sample: shape {self.y.shape}, n={n}")
        for name, column in self.metadata.items():
            if column.shape != (n,):
                raise InputError(f"metadata column {name!r} must have one value per sample")
        texts = {"ids": self.ids, "label names": np.array(self.label_names, dtype=str)}
        if self.modality == "text":
            texts["texts"] = self.x
        texts.update(
            {f"metadata column {k!r}": v for k, v in self.metadata.items() if v.dtype.kind == "U"}
        )
        for what, values in texts.items():
            if any("\x00" in value for value in values.tolist()):
                raise InputError(f"{what} contain a NUL character")
        return self

    def save(self, fileobj: IO[bytes]) -> None:
        """Write the canonical ``.npz`` (no pickled objects)."""
        arrays = {"x": self.x, "ids": self.ids, "modality": np.array(self.modality)}
        if self.y is not None:
            arrays["y"] = self.y
            arrays["label_names"] = np.array(self.label_names, dtype=str)
        for name, column in self.metadata.items():
            arrays[f"meta:{name}"] = column
        # numpy's stubs fear a name could fill savez's allow_pickle; none of these is that name
        np.savez(fileobj, **arrays)  # type: ignore[arg-type]

    @classmethod
    def load(cls, fileobj: IO[bytes]) -> DatasetArrays:
        """Read a canonical ``.npz`` written by :meth:`save`."""
        with np.load(fileobj, allow_pickle=False) as z:
            return cls(
                x=z["x"],
                ids=z["ids"],
                modality=str(z["modality"]),
                y=z["y"] if "y" in z else None,
                label_names=[str(s) for s in z["label_names"]] if "label_names" in z else [],
                metadata={k[5:]: z[k] for k in z.files if k.startswith("meta:")},
            )


def npz_rows(f: IO[bytes], member: str, rows: Sequence[int]) -> np.ndarray | None:
    """Rows ``rows`` of array ``member`` of an ``.npz`` file object, or None when it has no
    such member. A member stored uncompressed (as :meth:`DatasetArrays.save` writes it) is read
    row by row from where each row starts, so a few samples of a large dataset cost a few
    reads; a compressed one is read whole."""
    rows = [int(r) for r in rows]
    with zipfile.ZipFile(f) as z:
        try:
            info = z.getinfo(f"{member}.npy")
        except KeyError:
            return None
        if info.compress_type != zipfile.ZIP_STORED:
            with z.open(info) as m:
                return np.load(m, allow_pickle=False)[rows]
    f.seek(info.header_offset + 26)
    name_length, extra_length = struct.unpack("<HH", f.read(4))
    f.seek(info.header_offset + 30 + name_length + extra_length)
    version = np.lib.format.read_magic(f)
    read_header = (
        np.lib.format.read_array_header_1_0
        if version == (1, 0)
        else np.lib.format.read_array_header_2_0
    )
    shape, fortran_order, dtype = read_header(f)
    if fortran_order or dtype.hasobject or not shape:
        raise InputError(f"{member} is not stored row by row")
    start, row_bytes = f.tell(), int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
    out = np.empty((len(rows), *shape[1:]), dtype=dtype)
    for position, row in enumerate(rows):
        if not 0 <= row < shape[0]:
            raise IndexError(f"row {row} of {member}, which has {shape[0]}")
        f.seek(start + row * row_bytes)
        out[position] = np.frombuffer(f.read(row_bytes), dtype=dtype).reshape(shape[1:])
    return out


SUFFIXES = (".npz", ".zip", ".csv", ".jsonl")
"""Dataset files by extension: arrays, a zip of images in class folders, a table, texts."""


def check_dataset_name(filename: str) -> str:
    """The extension of a dataset file, refused unless it is one of :data:`SUFFIXES` (so
    that a wrong file is refused before its bytes are sent)."""
    suffix = PurePosixPath(filename.lower()).suffix
    if suffix not in SUFFIXES:
        raise InputError(
            f"unsupported dataset file {filename!r}: upload a .npz, .zip, .csv or .jsonl"
        )
    return suffix


def read_dataset(path: str | Path, filename: str, max_files: int, max_bytes: int) -> DatasetArrays:
    """Parse an uploaded dataset file by its extension into validated :class:`DatasetArrays`."""
    suffix = check_dataset_name(filename)
    if suffix == ".npz":
        return read_npz(path)
    if suffix == ".zip":
        return read_image_zip(path, max_files=max_files, max_bytes=max_bytes)
    if suffix == ".csv":
        return read_csv(path)
    return read_jsonl(path)


def _labels(raw: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Class indices and names from integer or string labels."""
    if np.issubdtype(raw.dtype, np.integer):
        return raw.astype(np.int64), []
    if raw.dtype.kind in "US":
        names, index = np.unique(raw.astype(str), return_inverse=True)
        return index.astype(np.int64), [str(s) for s in names]
    raise InputError(f"labels must be integers or strings, got dtype {raw.dtype}")


IMAGE_LAYOUTS = "n × H × W (grey), n × C × H × W or n × H × W × C with C = 1 or 3 (or RGBA)"
MAX_IMAGE_SIDE = 256
"""Images of a .zip are resized to their most common size, its longer side at most this."""
MAX_IMAGE_PIXELS = 40_000_000
"""The largest image (width × height) a .zip may hold: refused from its header, undecoded."""
MAX_IMAGE_BYTES = 64 * 1024**2
"""The largest image file a .zip may hold (uncompressed)."""
MAX_IMAGE_VALUES = 2**28
"""The most values n × C × H × W an image dataset may have (1 GiB as float32)."""


def real_values(values: np.ndarray, what: str) -> np.ndarray:
    """``values`` as contiguous float32, refused unless they are real, finite numbers: complex
    numbers would lose their imaginary part, text or objects are no features, and NaN or an
    infinity (or a number too large for float32) would poison every statistic."""
    kind = values.dtype.kind
    if kind == "c":
        raise InputError(f"{what} holds complex numbers; only real numbers can be used")
    if kind not in "biuf":
        found = "text" if kind in "US" else "dates or times" if kind in "mM" else "other data"
        raise InputError(f"{what} must hold numbers, not {found}")
    with np.errstate(over="ignore"):  # a number too large becomes inf: refused below
        out = np.ascontiguousarray(values, dtype=np.float32)
    if not np.isfinite(out).all():
        raise InputError(
            f"{what} holds NaN or infinite values, or numbers too large for 32-bit floats "
            "(over 3.4e38)"
        )
    return out


def _image_layout(x: np.ndarray) -> np.ndarray:
    """``n × H × W``, ``n × C × H × W`` or ``n × H × W × C`` (C = 1 or 3) → ``n × C × H × W``,
    uint8 scaled to [0, 1]; any other layout is refused, as is one over MAX_IMAGE_VALUES."""
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4 and x.shape[1] not in (1, 3) and x.shape[-1] in (1, 3, 4):
        x = np.moveaxis(x[..., :3], -1, 1)  # channels last; RGBA's alpha dropped
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise InputError(
            f"x has shape {x.shape}: an image dataset is {IMAGE_LAYOUTS}, and a vector "
            "dataset is n × d"
        )
    _check_image_values(*x.shape)
    return x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x  # checked by validate


def _check_image_values(n: int, c: int, h: int, w: int) -> None:
    if n * c * h * w > MAX_IMAGE_VALUES:
        raise InputError(
            f"the images come to {n} × {c} × {h} × {w} = {n * c * h * w:,} values, over the "
            f"limit of {MAX_IMAGE_VALUES:,}: use fewer or smaller images"
        )


def read_npz(path: str | Path) -> DatasetArrays:
    with open(path, "rb") as f:
        if f.read(4) != b"PK\x03\x04":
            raise InputError("not an .npz archive: save the arrays with np.savez")
    try:
        z = np.load(path, allow_pickle=False)
        if not isinstance(z, np.lib.npyio.NpzFile):
            raise InputError("not an .npz archive (a single .npy array?): save with np.savez")
        with z:
            arrays = {k: z[k] for k in z.files}
    except InputError:
        raise
    except ValueError as err:
        if "pickle" in str(err):
            raise InputError(
                "the .npz holds Python objects, which would need unpickling; store strings "
                "as fixed-width arrays (np.array(list_of_str)) instead"
            ) from None
        raise InputError.caused_by("not a readable .npz archive", err) from None
    except (OSError, zipfile.BadZipFile, EOFError, zlib.error) as err:
        raise InputError.caused_by("not a readable .npz archive", err) from None
    if "x" not in arrays:
        raise InputError(f"the .npz has no 'x' array (found: {', '.join(arrays) or 'nothing'})")
    x = arrays.pop("x")
    if x.ndim < 2:
        raise InputError(f"x must have one row per sample (n × …), got shape {x.shape}")
    n = len(x)
    modality = "image" if x.ndim >= 3 else "vector"
    if modality == "image":
        x = _image_layout(x)
    ids = arrays.pop("ids", np.array([str(i) for i in range(n)]))
    y: np.ndarray | None = None
    names: list[str] = []
    if "y" in arrays:
        y, names = _labels(arrays.pop("y"))
    if "label_names" in arrays:
        names = [str(s) for s in arrays.pop("label_names")]
    metadata = {}
    for key, value in arrays.items():
        if value.ndim != 1 or len(value) != n:
            raise InputError(
                f"array {key!r} has shape {value.shape}; extra arrays must be metadata "
                f"columns with one value per sample (n={n})"
            )
        metadata[key] = value
    return DatasetArrays(x, ids, modality, y, names, metadata).validate()


def read_image_zip(path: str | Path, max_files: int, max_bytes: int) -> DatasetArrays:
    """Images in class folders (``class_name/image.png``). Read entry by entry in two passes:
    the headers first (each image's size, refused over MAX_IMAGE_BYTES or MAX_IMAGE_PIXELS),
    then each image decoded alone and resized at once to the dataset's size — the most common
    size among them, its longer side at most MAX_IMAGE_SIDE — so memory holds one image and
    the result, never the archive's pixels."""
    from collections import Counter

    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError):
        raise InputError("the file is not a readable .zip archive") from None
    with zf:
        members, sizes, grey = [], [], True
        for m in zip_members(zf, max_files, max_bytes):
            p = PurePosixPath(m.filename)
            if p.name.startswith(".") or "__MACOSX" in p.parts:
                continue
            if p.suffix.lower() not in IMAGE_SUFFIXES:
                raise InputError(f"{m.filename!r} is not an image file")
            if len(p.parts) < 2:
                raise InputError(
                    f"{m.filename!r} is not in a class folder: use class_name/image.png"
                )
            if m.file_size > MAX_IMAGE_BYTES:
                raise InputError(
                    f"{m.filename!r} is {m.file_size:,} bytes; an image may be at most "
                    f"{MAX_IMAGE_BYTES:,}"
                )
            with _image(zf, m) as img:  # its header only
                (width, height), mode = img.size, img.mode
            if width * height > MAX_IMAGE_PIXELS:
                raise InputError(
                    f"{m.filename!r} is {width} × {height} pixels; an image may have at most "
                    f"{MAX_IMAGE_PIXELS:,}"
                )
            grey = grey and mode in ("1", "L", "LA", "I", "I;16")
            members.append(m)
            sizes.append((width, height))
        if not members:
            raise InputError("the archive holds no images")
        (width, height), _ = Counter(sizes).most_common(1)[0]
        scale = min(1.0, MAX_IMAGE_SIDE / max(width, height))
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        channels = 1 if grey else 3
        _check_image_values(len(members), channels, size[1], size[0])
        shape = (len(members), size[1], size[0]) + (() if grey else (3,))
        x = np.empty(shape, dtype=np.uint8)
        for i, m in enumerate(members):
            with _image(zf, m) as img:
                x[i] = np.asarray(img.convert("L" if grey else "RGB").resize(size))
    paths = [PurePosixPath(m.filename) for m in members]
    y, names = _labels(np.array([p.parts[-2] for p in paths]))
    ids = np.array([str(p.with_suffix("")) for p in paths])
    return DatasetArrays(_image_layout(x), ids, "image", y, names).validate()


@contextmanager
def _image(zf: zipfile.ZipFile, member: zipfile.ZipInfo) -> Iterator[Any]:
    """The image ``member`` of ``zf``, opened lazily from the archive (decoded only when its
    pixels are asked for); an unreadable one is refused by name."""
    from PIL import Image, UnidentifiedImageError

    try:
        with zf.open(member) as f, Image.open(f) as img:
            yield img
    except InputError:
        raise
    except (
        UnidentifiedImageError,
        Image.DecompressionBombError,
        OSError,
        ValueError,
        SyntaxError,
        zipfile.BadZipFile,
        zlib.error,
        EOFError,
    ):
        raise InputError(
            f"{member.filename!r} is not an image this site can read (PNG, JPEG, BMP, GIF, "
            "TIFF or WebP)"
        ) from None


def read_csv(path: str | Path) -> DatasetArrays:
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))
    except UnicodeDecodeError:
        raise InputError("the .csv is not UTF-8 text") from None
    except csv.Error as err:
        raise InputError.caused_by("malformed .csv", err) from None
    if len(rows) < 2:
        raise InputError("the .csv needs a header row and at least one data row")
    header, body = rows[0], rows[1:]
    for i, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise InputError(f"line {i} has {len(row)} fields; the header has {len(header)}")
    columns = {name: np.array([row[k] for row in body]) for k, name in enumerate(header)}
    ids = columns.pop("id", np.array([str(i) for i in range(len(body))]))
    label_column = next((c for c in ("label", "y") if c in columns), None)
    y, names = (None, []) if label_column is None else _labels(columns.pop(label_column))
    if TEXT_COLUMN in columns:
        texts = columns.pop(TEXT_COLUMN)
        metadata = {name: _numbers_if_possible(values) for name, values in columns.items()}
        return DatasetArrays(texts, ids, "text", y, names, metadata).validate()
    features, metadata = [], {}
    for name, values in columns.items():
        try:
            features.append(values.astype(np.float64))
        except ValueError:
            metadata[name] = values
    if not features:
        raise InputError("the .csv has no numeric feature columns")
    x = np.stack(features, axis=1)
    return DatasetArrays(x, ids, "tabular", y, names, metadata).validate()


def thumbnails(arrays: DatasetArrays, size: int = 32) -> np.ndarray | None:
    """``n × h × w`` (grey) or ``n × h × w × 3`` uint8 previews of an image dataset, at most
    ``size`` pixels on a side; ``None`` for other modalities."""
    if arrays.modality != "image":
        return None
    return image_previews(arrays.x, size)


def image_previews(images: np.ndarray, size: int = 32) -> np.ndarray:
    """``n × h × w`` (grey) or ``n × h × w × 3`` uint8 previews of float images ``n × C × H × W``
    in [0, 1] (values outside are clipped), at most ``size`` pixels on a side."""
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
    h, w = x.shape[-2:]
    scale = min(1.0, size / max(h, w))
    if scale < 1.0:
        x = F.interpolate(x, size=(max(1, round(h * scale)), max(1, round(w * scale))), mode="area")
    x = (x.clamp(0, 1) * 255).round().to(torch.uint8)
    x = x[:, 0] if x.shape[1] == 1 else x[:, :3].permute(0, 2, 3, 1)
    return x.numpy()


def _numbers_if_possible(values: np.ndarray) -> np.ndarray:
    """A text column as float64 when every value is a number, else as it is."""
    try:
        return values.astype(np.float64)
    except ValueError:
        return values


def read_jsonl(path: str | Path) -> DatasetArrays:
    """A text dataset from JSON lines (see the module docstring); blank lines are skipped."""
    records = []
    try:
        with open(path, encoding="utf-8-sig") as f:
            for number, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as err:
                    raise InputError(f"line {number} is not JSON: {err.msg}") from None
                if not isinstance(record, dict):
                    raise InputError(f"line {number} is not a JSON object")
                if not isinstance(record.get(TEXT_COLUMN), str):
                    raise InputError(f"line {number} has no {TEXT_COLUMN!r} string")
                records.append((number, record))
    except UnicodeDecodeError:
        raise InputError("the .jsonl is not UTF-8 text") from None
    if not records:
        raise InputError("the .jsonl holds no lines")
    keys = list(records[0][1])
    for number, record in records:
        if set(record) != set(keys):
            raise InputError(
                f"line {number} has the keys {sorted(record)}; line {records[0][0]} has "
                f"{sorted(keys)}: every line needs the same keys"
            )
    columns = {key: [record[key] for _, record in records] for key in keys}
    texts = np.array(columns.pop(TEXT_COLUMN), dtype=str)
    ids = np.array([str(v) for v in columns.pop("id", range(len(texts)))])
    y, names = (None, []) if "label" not in columns else _labels(np.array(columns.pop("label")))
    metadata = {}
    for key, values in columns.items():
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
            metadata[key] = np.array(values, dtype=np.float64)
        elif all(isinstance(v, str) for v in values):
            metadata[key] = np.array(values, dtype=str)
        else:
            raise InputError(f"metadata {key!r} must be all strings or all numbers")
    return DatasetArrays(texts, ids, "text", y, names, metadata).validate()
