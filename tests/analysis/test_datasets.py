"""Dataset readers (analysis/data/datasets.py): .npz, image-folder .zip, .csv, the canonical
form."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from analysis.data import datasets
from analysis.data.datasets import (
    DatasetArrays,
    read_csv,
    read_dataset,
    read_image_zip,
    read_npz,
    thumbnails,
)
from analysis.errors import InputError

SEEDS = [0, 1, 2]
LIMITS = {"max_files": 1000, "max_bytes": 10**8}


def png(size=(8, 6), mode="RGB", color=(255, 0, 0), fmt="PNG") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, color).save(buf, fmt)
    return buf.getvalue()


def write_zip(path: Path, members: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# --- .npz -----------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_npz_vectors_with_string_labels_and_metadata(seed, tmp_path):
    rng = np.random.default_rng(seed)
    n = 9
    x = rng.standard_normal((n, 5))
    labels = np.array(["dog", "cat", "bird"] * 3)
    ids = np.array([f"s{i:02d}" for i in range(n)])
    split = np.array(["train", "test", "train"] * 3)
    score = rng.uniform(size=n)
    path = tmp_path / "data.npz"
    np.savez(path, x=x, y=labels, ids=ids, split=split, score=score)
    data = read_npz(path)
    assert data.n == n
    assert data.modality == "vector"
    assert data.x.dtype == np.float32 and data.x.shape == (n, 5)
    np.testing.assert_allclose(data.x, x.astype(np.float32))
    assert list(data.ids) == list(ids)
    assert data.label_names == ["bird", "cat", "dog"]
    assert data.y.dtype == np.int64
    assert [data.label_of(i) for i in range(n)] == list(labels)
    assert set(data.metadata) == {"split", "score"}
    assert list(data.metadata["split"]) == list(split)
    np.testing.assert_array_equal(data.metadata["score"], score)


def test_npz_integer_labels_with_names_and_default_ids(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, x=np.ones((4, 2)), y=np.array([0, 1, 1, 0]), label_names=np.array(["a", "b"]))
    data = read_npz(path)
    assert list(data.ids) == ["0", "1", "2", "3"]
    assert list(data.y) == [0, 1, 1, 0]
    assert [data.label_of(i) for i in range(4)] == ["a", "b", "b", "a"]
    assert data.metadata == {}


@pytest.mark.parametrize(
    ("shape", "expected"),
    [((4, 6, 5), (4, 1, 6, 5)), ((4, 6, 5, 3), (4, 3, 6, 5)), ((4, 3, 6, 5), (4, 3, 6, 5))],
)
def test_npz_uint8_images_to_nchw_unit_range(shape, expected, tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=shape, dtype=np.uint8)
    x.flat[0] = 255
    path = tmp_path / "img.npz"
    np.savez(path, x=x)
    data = read_npz(path)
    assert data.modality == "image"
    assert data.x.shape == expected
    assert data.x.dtype == np.float32
    assert 0.0 <= data.x.min() and data.x.max() == 1.0


def test_npz_rgba_images_drop_alpha(tmp_path):
    x = np.zeros((2, 4, 4, 4), dtype=np.uint8)
    x[..., 0] = 255
    x[..., 3] = 7
    path = tmp_path / "rgba.npz"
    np.savez(path, x=x)
    data = read_npz(path)
    assert data.x.shape == (2, 3, 4, 4)
    assert np.all(data.x[:, 0] == 1.0) and np.all(data.x[:, 1:] == 0.0)


def _npz_error(tmp_path: Path, **arrays) -> str:
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(InputError) as info:
        read_npz(path)
    return str(info.value)


def test_npz_without_x(tmp_path):
    message = _npz_error(tmp_path, features=np.ones((3, 2)), y=np.arange(3))
    assert "'x'" in message and "features" in message


def test_npz_with_object_array_needs_pickle(tmp_path):
    message = _npz_error(tmp_path, x=np.ones((3, 2)), y=np.array([{"a": 1}, None, 3], object))
    assert "unpickling" in message
    message = _npz_error(tmp_path, x=np.array([[1, "a"], [2, None]], dtype=object))
    assert "unpickling" in message


def test_npz_metadata_of_wrong_length(tmp_path):
    message = _npz_error(tmp_path, x=np.ones((5, 2)), split=np.array(["a", "b", "c"]))
    assert "'split'" in message and "n=5" in message
    message = _npz_error(tmp_path, x=np.ones((5, 2)), grid=np.ones((5, 2)))
    assert "'grid'" in message


def test_npz_duplicate_ids(tmp_path):
    assert "unique" in _npz_error(tmp_path, x=np.ones((3, 2)), ids=np.array(["a", "b", "a"]))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_npz_non_finite_x(bad, tmp_path):
    x = np.ones((3, 2))
    x[1, 1] = bad
    assert "NaN or infinite" in _npz_error(tmp_path, x=x)


def test_npz_other_shape_errors(tmp_path):
    assert "one row per sample" in _npz_error(tmp_path, x=np.ones(5))
    assert "no samples" in _npz_error(tmp_path, x=np.ones((0, 3)))
    assert "must hold numbers, not text" in _npz_error(
        tmp_path, x=np.array([["a", "b"], ["c", "d"]])
    )
    assert "one label per sample" in _npz_error(tmp_path, x=np.ones((3, 2)), y=np.arange(4))
    assert "ids" in _npz_error(tmp_path, x=np.ones((3, 2)), ids=np.array(["a", "b"]))
    assert "labels" in _npz_error(tmp_path, x=np.ones((3, 2)), y=np.array([0.5, 1.5, 2.5]))


@pytest.mark.parametrize("damage", ["truncate", "flip stored bytes", "random bytes", "empty"])
def test_npz_corrupt(damage, tmp_path):
    good = tmp_path / "good.npz"
    np.savez(good, x=np.random.default_rng(0).standard_normal((50, 20)))
    raw = bytearray(good.read_bytes())
    if damage == "truncate":
        raw = raw[: len(raw) // 2]
    elif damage == "flip stored bytes":
        raw[300:400] = bytes(b ^ 0xFF for b in raw[300:400])
    elif damage == "random bytes":
        raw = bytearray(np.random.default_rng(0).bytes(500))
    else:
        raw = bytearray()
    bad = tmp_path / "bad.npz"
    bad.write_bytes(bytes(raw))
    with pytest.raises(InputError):
        read_npz(bad)


def test_npz_corrupt_compressed(tmp_path):
    good = tmp_path / "good.npz"
    np.savez_compressed(good, x=np.random.default_rng(0).standard_normal((50, 20)))
    raw = bytearray(good.read_bytes())
    raw[200:400] = bytes(b ^ 0xFF for b in raw[200:400])
    bad = tmp_path / "bad.npz"
    bad.write_bytes(bytes(raw))
    with pytest.raises(InputError):
        read_npz(bad)


def test_single_npy_is_not_an_npz(tmp_path):
    path = tmp_path / "x.npz"
    with open(path, "wb") as f:
        np.save(f, np.ones((3, 2)))
    with pytest.raises(InputError, match="np.savez"):
        read_npz(path)


# --- image-folder .zip ----------------------------------------------------------------------


def test_zip_mixed_sizes_and_modes(tmp_path):
    path = write_zip(
        tmp_path / "imgs.zip",
        {
            "cat/a.png": png((8, 6), "RGB", (255, 0, 0)),
            "cat/b.png": png((10, 12), "L", 255),
            "dog/c.png": png((8, 6), "RGBA", (0, 0, 255, 128)),
            "dog/d.jpg": png((5, 5), "RGB", (0, 255, 0), fmt="JPEG"),
            "dog/e.png": png((8, 6), "P", 0),
            "__MACOSX/cat/._a.png": b"junk",
            "cat/.DS_Store": b"junk",
        },
    )
    data = read_image_zip(path, **LIMITS)
    assert data.n == 5
    assert data.modality == "image"
    assert data.x.shape == (5, 3, 6, 8)  # RGB, the most common size (W=8, H=6)
    assert data.x.dtype == np.float32
    assert 0.0 <= data.x.min() and data.x.max() <= 1.0
    assert list(data.ids) == ["cat/a", "cat/b", "dog/c", "dog/d", "dog/e"]
    assert data.label_names == ["cat", "dog"]
    assert [data.label_of(i) for i in range(5)] == ["cat", "cat", "dog", "dog", "dog"]
    np.testing.assert_allclose(data.x[0, :, 0, 0], [1.0, 0.0, 0.0])
    np.testing.assert_allclose(data.x[1, :, 0, 0], [1.0, 1.0, 1.0])  # white grey → RGB
    np.testing.assert_allclose(data.x[2, :, 0, 0], [0.0, 0.0, 1.0])
    np.testing.assert_allclose(data.x[3, :, 3, 3], [0.0, 1.0, 0.0], atol=0.02)  # JPEG
    assert data.metadata == {}


def test_zip_all_grey_is_one_channel(tmp_path):
    path = write_zip(
        tmp_path / "grey.zip",
        {"zero/a.png": png((7, 5), "L", 0), "one/b.png": png((3, 3), "1", 1)},
    )
    data = read_image_zip(path, **LIMITS)
    assert data.x.shape == (2, 1, 5, 7)
    assert data.x[0].max() == 0.0 and data.x[1].min() == 1.0
    assert [data.label_of(i) for i in range(2)] == ["zero", "one"]


def test_zip_nested_folders_use_the_parent_as_class(tmp_path):
    path = write_zip(tmp_path / "n.zip", {"train/cat/a.png": png(), "train/dog/b.png": png()})
    data = read_image_zip(path, **LIMITS)
    assert list(data.ids) == ["train/cat/a", "train/dog/b"]
    assert data.label_names == ["cat", "dog"]


def _zip_error(path: Path, **limits) -> str:
    with pytest.raises(InputError) as info:
        read_image_zip(path, **(LIMITS | limits))
    return str(info.value)


@pytest.mark.parametrize("name", ["../evil.png", "cat/../../evil.png", "/abs/evil.png"])
def test_zip_unsafe_paths(name, tmp_path):
    path = write_zip(tmp_path / "evil.zip", {"cat/ok.png": png(), name: png()})
    assert "unsafe path" in _zip_error(path)


def test_zip_symlink_member(tmp_path):
    path = tmp_path / "link.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("cat/ok.png", png())
        link = zipfile.ZipInfo("cat/link.png")
        link.create_system = 3  # unix
        link.external_attr = 0o120777 << 16
        zf.writestr(link, "/etc/passwd")
    assert "symbolic link" in _zip_error(path)


def test_zip_too_many_files(tmp_path):
    path = write_zip(tmp_path / "many.zip", {f"c/{i}.png": png() for i in range(3)})
    assert read_image_zip(path, max_files=3, max_bytes=10**8).n == 3
    message = _zip_error(path, max_files=2)
    assert "3 files" in message and "limit is 2" in message


def test_zip_too_many_bytes(tmp_path):
    members = {f"c/{i}.png": png() for i in range(3)}
    total = sum(len(v) for v in members.values())
    path = write_zip(tmp_path / "big.zip", members)
    assert read_image_zip(path, max_files=10, max_bytes=total).n == 3
    assert "more than" in _zip_error(path, max_bytes=total - 1)


def test_zip_non_image_member(tmp_path):
    path = write_zip(tmp_path / "t.zip", {"cat/a.png": png(), "cat/notes.txt": b"hi"})
    assert "not an image file" in _zip_error(path) and "notes.txt" in _zip_error(path)


def test_zip_image_outside_class_folder(tmp_path):
    path = write_zip(tmp_path / "flat.zip", {"a.png": png()})
    assert "class folder" in _zip_error(path)


def test_zip_undecodable_image(tmp_path):
    path = write_zip(tmp_path / "bad.zip", {"cat/a.png": b"not really a png"})
    assert _zip_error(path) == (
        "'cat/a.png' is not an image this site can read (PNG, JPEG, BMP, GIF, TIFF or WebP)"
    )


def test_zip_without_images_and_not_a_zip(tmp_path):
    empty = write_zip(tmp_path / "empty.zip", {"__MACOSX/x.png": b""})
    assert "no images" in _zip_error(empty)
    not_zip = tmp_path / "fake.zip"
    not_zip.write_bytes(b"hello")
    assert "not a readable .zip" in _zip_error(not_zip)


def test_zip_duplicate_ids_from_same_stem(tmp_path):
    path = write_zip(tmp_path / "dup.zip", {"cat/a.png": png(), "cat/a.jpg": png(fmt="JPEG")})
    assert "unique" in _zip_error(path)


@pytest.mark.parametrize(
    "compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED], ids=["stored", "deflated"]
)
def test_zip_damaged_member(compression, tmp_path):
    good = write_zip(tmp_path / "good.zip", {"cat/a.png": png((64, 64))}, compression)
    raw = bytearray(good.read_bytes())
    start = raw.find(b"IDAT") if compression == zipfile.ZIP_STORED else 60
    raw[start + 4 : start + 40] = bytes(b ^ 0x55 for b in raw[start + 4 : start + 40])
    bad = tmp_path / "bad.zip"
    bad.write_bytes(bytes(raw))
    with pytest.raises(InputError):
        read_image_zip(bad, **LIMITS)


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )


def test_npz_complex_x_is_refused_not_cut_to_its_real_part(tmp_path):
    x = np.ones((3, 2), dtype=np.complex64) * (1 + 2j)
    assert _npz_error(tmp_path, x=x) == "x holds complex numbers; only real numbers can be used"


def test_npz_x_too_large_for_float32_is_refused(tmp_path):
    assert "too large" in _npz_error(tmp_path, x=np.full((3, 2), 1e300))


@pytest.mark.parametrize("shape", [(4, 1, 1, 1, 1), (4, 2, 5, 5), (4, 5, 5, 7)])
def test_npz_only_image_layouts_are_images(shape, tmp_path):
    """Five dimensions, or four without 1 or 3 channels at either end, is no image layout."""
    message = _npz_error(tmp_path, x=np.zeros(shape, dtype=np.uint8))
    assert message.startswith(f"x has shape {shape}: an image dataset is n × H × W")


def test_npz_images_over_the_value_cap_are_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets, "MAX_IMAGE_VALUES", 3 * 8 * 8 * 2)
    message = _npz_error(tmp_path, x=np.zeros((3, 3, 8, 8), dtype=np.uint8))
    assert message == (
        "the images come to 3 × 3 × 8 × 8 = 576 values, over the limit of 384: "
        "use fewer or smaller images"
    )


def test_zip_images_take_the_most_common_size_capped(tmp_path):
    """One large image among many small ones no longer sets the size of all (the 6.4 KB zip
    of issue 16 stored 43 MB): the most common size wins, its longer side at most 256."""
    members = {"big/a.png": png((512, 512), "L", 10)}
    members.update({f"small/{i}.png": png((8, 8), "L", 200) for i in range(40)})
    data = read_image_zip(write_zip(tmp_path / "mixed.zip", members), **LIMITS)
    assert data.x.shape == (41, 1, 8, 8)
    alone = read_image_zip(
        write_zip(tmp_path / "big.zip", {"big/a.png": png((600, 300), "RGB", (0, 0, 0))}),
        **LIMITS,
    )
    assert alone.x.shape == (1, 3, 128, 256)  # W 600 → 256, H 300 → 128


def test_zip_image_over_the_pixel_cap_is_refused_from_its_header(tmp_path):
    path = write_zip(tmp_path / "wide.zip", {"cat/wide.png": _png_header_only(8000, 6000)})
    assert _zip_error(path) == (
        "'cat/wide.png' is 8000 × 6000 pixels; an image may have at most 40,000,000"
    )


def test_zip_image_file_over_the_byte_cap_is_refused_unread(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets, "MAX_IMAGE_BYTES", 100)
    path = write_zip(tmp_path / "z.zip", {"cat/a.png": png((40, 40), "RGB", (1, 2, 3))})
    assert _zip_error(path).endswith("an image may be at most 100")


def test_zip_decompression_bomb_image(tmp_path):
    path = write_zip(tmp_path / "bomb.zip", {"cat/bomb.png": _png_header_only(30000, 30000)})
    with pytest.raises(InputError):
        read_image_zip(path, **LIMITS)


# --- .csv -----------------------------------------------------------------------------------


def test_csv_id_label_numeric_and_string_columns(tmp_path):
    path = write_csv(
        tmp_path / "t.csv",
        "id,label,f1,city,f2\nr1,spam,1.5,Paris,-2\nr2,ham,2,Oslo,3e2\nr3,spam,0,Lima,4\n",
    )
    data = read_csv(path)
    assert data.n == 3
    assert data.modality == "tabular"
    assert data.x.dtype == np.float32
    np.testing.assert_allclose(data.x, [[1.5, -2], [2, 300], [0, 4]])
    assert list(data.ids) == ["r1", "r2", "r3"]
    assert data.label_names == ["ham", "spam"]
    assert [data.label_of(i) for i in range(3)] == ["spam", "ham", "spam"]
    assert list(data.metadata) == ["city"]
    assert list(data.metadata["city"]) == ["Paris", "Oslo", "Lima"]


def test_csv_y_column_and_default_ids(tmp_path):
    data = read_csv(write_csv(tmp_path / "t.csv", "a,y,b\n1,x,2\n3,z,4\n"))
    assert list(data.ids) == ["0", "1"]
    assert data.label_names == ["x", "z"]
    np.testing.assert_allclose(data.x, [[1, 2], [3, 4]])


def _csv_error(path: Path) -> str:
    with pytest.raises(InputError) as info:
        read_csv(path)
    return str(info.value)


def test_csv_ragged_row(tmp_path):
    message = _csv_error(write_csv(tmp_path / "r.csv", "a,b\n1,2\n3\n"))
    assert "line 3" in message and "1 fields" in message


def test_csv_without_numeric_columns(tmp_path):
    assert "no numeric" in _csv_error(write_csv(tmp_path / "s.csv", "id,name\na,x\nb,y\n"))


def test_csv_not_utf8(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("id,ville,f\n1,Besançon,2\n".encode("latin-1"))
    assert "UTF-8" in _csv_error(path)


def test_csv_other_errors(tmp_path):
    assert "header" in _csv_error(write_csv(tmp_path / "h.csv", "a,b\n"))
    assert "header" in _csv_error(write_csv(tmp_path / "e.csv", ""))
    assert "unique" in _csv_error(write_csv(tmp_path / "d.csv", "id,f\na,1\na,2\n"))
    assert "NaN or infinite" in _csv_error(write_csv(tmp_path / "n.csv", "f,g\nnan,1\n2,3\n"))
    big = "f\n" + "1" * 200_000 + "\n"
    assert "malformed" in _csv_error(write_csv(tmp_path / "big.csv", big))


def test_csv_with_byte_order_mark(tmp_path):
    path = tmp_path / "excel.csv"
    path.write_text("id,label,f1\n10,x,1\n20,y,2\n", encoding="utf-8-sig")
    data = read_csv(path)
    assert list(data.ids) == ["10", "20"]
    assert data.x.shape == (2, 1)


# --- dispatch, canonical form, thumbnails ----------------------------------------------------


def test_read_dataset_dispatches_on_extension(tmp_path):
    npz = tmp_path / "upload_1"
    with open(npz, "wb") as f:
        np.savez(f, x=np.ones((3, 2)))
    assert read_dataset(npz, "Data.NPZ", **LIMITS).modality == "vector"
    csv_path = write_csv(tmp_path / "upload_2", "f\n1\n2\n")
    assert read_dataset(csv_path, "table.csv", **LIMITS).modality == "tabular"
    zip_path = write_zip(tmp_path / "upload_3", {"c/a.png": png()})
    assert read_dataset(zip_path, "imgs.zip", **LIMITS).modality == "image"
    for name in ("data.pkl", "data.npy", "data", "data.tar.gz"):
        with pytest.raises(InputError, match="unsupported dataset file") as info:
            read_dataset(npz, name, **LIMITS)
        assert ".npz" in str(info.value)


def _datasets(tmp_path: Path, seed: int) -> list[DatasetArrays]:
    rng = np.random.default_rng(seed)
    npz = tmp_path / "d.npz"
    np.savez(
        npz,
        x=rng.standard_normal((6, 4)),
        y=np.array(list("abcabc")),
        split=np.array(["tr", "te"] * 3),
        w=rng.uniform(size=6),
    )
    no_labels = tmp_path / "e.npz"
    np.savez(no_labels, x=rng.standard_normal((5, 2)))
    imgs = write_zip(tmp_path / "i.zip", {"a/1.png": png(), "b/2.png": png(mode="L", color=9)})
    csv_path = write_csv(tmp_path / "t.csv", "id,label,f,city\nq,1,0.5,X\nr,0,2,Y\ns,1,3,Z\n")
    return [read_npz(npz), read_npz(no_labels), read_image_zip(imgs, **LIMITS), read_csv(csv_path)]


@pytest.mark.parametrize("seed", SEEDS)
def test_canonical_save_load_round_trip(seed, tmp_path):
    for original in _datasets(tmp_path, seed):
        buf = io.BytesIO()
        original.save(buf)
        buf.seek(0)
        loaded = DatasetArrays.load(buf)
        np.testing.assert_array_equal(loaded.x, original.x)
        assert loaded.x.dtype == np.float32
        assert list(loaded.ids) == list(original.ids)
        assert loaded.modality == original.modality
        if original.y is None:
            assert loaded.y is None
        else:
            np.testing.assert_array_equal(loaded.y, original.y)
        assert loaded.label_names == original.label_names
        assert set(loaded.metadata) == set(original.metadata)
        for key, column in original.metadata.items():
            np.testing.assert_array_equal(loaded.metadata[key], column)
        assert [loaded.label_of(i) for i in range(loaded.n)] == [
            original.label_of(i) for i in range(original.n)
        ]
        assert loaded.validate().n == original.n


def test_canonical_file_needs_no_pickle(tmp_path):
    original = _datasets(tmp_path, 0)[0]
    buf = io.BytesIO()
    original.save(buf)
    buf.seek(0)
    with np.load(buf, allow_pickle=False) as z:
        for key in z.files:
            assert z[key].dtype != object


def test_thumbnails_grey_and_rgb(tmp_path):
    grey = read_image_zip(
        write_zip(tmp_path / "g.zip", {"c/a.png": png((40, 64), "L", 255)}), **LIMITS
    )
    thumbs = thumbnails(grey)
    assert thumbs.dtype == np.uint8
    assert thumbs.shape == (1, 32, 20)  # longest side 64 → 32
    assert np.all(thumbs == 255)
    rgb = read_image_zip(
        write_zip(
            tmp_path / "c.zip",
            {"c/a.png": png((20, 16), "RGB", (255, 0, 0)), "d/b.png": png((20, 16), "L", 0)},
        ),
        **LIMITS,
    )
    thumbs = thumbnails(rgb)
    assert thumbs.dtype == np.uint8
    assert thumbs.shape == (2, 16, 20, 3)  # small images are not upscaled
    assert np.all(thumbs[0] == [255, 0, 0]) and np.all(thumbs[1] == 0)
    assert thumbnails(rgb, size=10).shape == (2, 8, 10, 3)


def test_thumbnails_none_for_other_modalities(tmp_path):
    for data in _datasets(tmp_path, 0):
        if data.modality != "image":
            assert thumbnails(data) is None


@pytest.mark.parametrize("compressed", [False, True])
def test_npz_rows_reads_the_rows_asked_for(compressed, tmp_path):
    """Rows of a member equal the whole array's rows, in the order asked for, for every
    kind of column a canonical file holds; a missing member is None."""
    from analysis.data.datasets import npz_rows

    rng = np.random.default_rng(0)
    arrays = {
        "x": rng.standard_normal((50, 1, 4, 3)).astype(np.float32),
        "ids": np.array([f"sample-{i:03d}" for i in range(50)]),
        "y": rng.integers(0, 7, 50),
        "texts": np.array(["a", "longer text", "ü"] * 16 + ["x", "y"]),
    }
    path = tmp_path / "d.npz"
    (np.savez_compressed if compressed else np.savez)(path, **arrays)
    wanted = [49, 0, 7, 7, 23]
    with open(path, "rb") as f:
        for name, whole in arrays.items():
            np.testing.assert_array_equal(npz_rows(f, name, wanted), whole[wanted])
            assert npz_rows(f, name, [])[:0].shape[1:] == whole.shape[1:]
        assert npz_rows(f, "meta:nothing", wanted) is None
        with pytest.raises(IndexError):
            npz_rows(f, "x", [50])


def test_npz_rows_of_a_stored_member_reads_only_those_rows(tmp_path):
    from analysis.data.datasets import npz_rows

    x = np.arange(2000 * 1000, dtype=np.float32).reshape(2000, 1000)  # 8 MB
    path = tmp_path / "d.npz"
    np.savez(path, x=x)

    class Counting(io.FileIO):
        read_bytes = 0

        def read(self, size=-1):
            data = super().read(size)
            Counting.read_bytes += len(data)
            return data

    with Counting(path, "rb") as f:
        np.testing.assert_array_equal(npz_rows(f, "x", [1234]), x[[1234]])
    assert 4000 <= Counting.read_bytes < 64 * 1024  # one 4 KB row, headers, the zip directory
