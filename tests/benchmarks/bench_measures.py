"""Measure benchmarks: RepLens against peer implementations and against the machine itself.

Run: ``python -m tests.benchmarks.bench_measures`` (25 to 35 minutes on 2 cores, depending on
what else runs) or with ``--quick`` (a smoke configuration, about two minutes). Asserts nothing
about speed. ``--measures``, ``--sections``, ``--peers``, ``--sizes`` and ``--dims`` run a part
(``--sections linear --repeats 3``: linear CKA's targets alone); ``--repeats`` times long calls
several times, for a machine shared with other work.

Linear CKA's targets (issue 19: within 1.5× the bound, never slower than plain numpy) have a
section of their own ("linear"): ours, a plain float64 numpy feature-space implementation and
the float64 matmul throughput are timed in turns, several rounds, each kept at its best, so
that other work on the machine weighs on the three alike; the table prints them side by side
with their ratios.

For linear CKA, debiased CKA, mean CCA, Procrustes, RSA and mutual kNN, on the same seeded data
and in the same run, it prints: our time (prepare both layers + score: the value only, as the
peers compute it), each peer's time, the time the flops the value minimally needs would take at
the float64 matrix-multiply throughput measured in this run ("bound"), their ratios, peak memory
per case, and max |ours − peer| as a cheap correctness check. Then a 12 × 12 layer matrix of two
random "models", and linear CKA streamed from memory-mapped files at n = 1,000,000.

Every case runs in one long-lived worker process (spawned once, so imports are paid once) that
the parent kills and replaces when a call overruns its time limit or dies: a slow or crashing
peer costs its cell, never the run. Peak memory of a case is the worker's high-water RSS during
the call minus its RSS just before it (inputs already loaded): the high-water mark is reset
through /proc/self/clear_refs before each call, so it belongs to that call alone.
That process keeps the memory it frees for its next arrays, as a worker's pool process does
(workers.cores.keep_freed_memory): ours and every peer run under it alike.

Peers are skipped, with the reason printed, when a cost model calibrated on the largest size
they ran at (time ∝ nᵃ·dᵇ, memory ∝ nᶜ; exponents in make_peers, from their algorithms and
measured here) predicts more memory or time than this machine or the run's budget allows.
"""

from __future__ import annotations

import os

# repsim's OpenMP threads otherwise keep spinning after each call and slow what runs next.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import datetime  # noqa: E402
import math  # noqa: E402
import multiprocessing  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

MIB = 1 << 20
MEMORY_LIMIT_MIB = 16 * 1024  # of 24 GiB: what one case may use beside the inputs
KNN_K = 10  # MutualKNN's default, and Huh et al.'s topk
PLAIN_NUMPY = "plain numpy float64 feature"

MEASURE_IDS = [
    "cka/linear",
    "cka/linear-debiased",
    "cca/mean",
    "procrustes/angular",
    "rsa/correlation-spearman",
    "knn/mutual",
]


@dataclass
class Config:
    sizes: list[int]
    dims: list[int]
    peer_limit_s: float  # a peer estimated to take longer is skipped
    matrix_layers: int
    matrix_n: int
    matrix_d: int
    matrix_peer_limit_s: float  # a peer matrix estimated to take longer is extrapolated
    stream_n: int
    stream_d: int
    throughput_size: int


FULL = Config(
    sizes=[1_000, 10_000, 50_000],
    dims=[256, 2048],
    peer_limit_s=240.0,
    matrix_layers=12,
    matrix_n=10_000,
    matrix_d=768,
    matrix_peer_limit_s=600.0,
    stream_n=1_000_000,
    stream_d=256,
    throughput_size=4096,
)
QUICK = Config(
    sizes=[500, 1_000],
    dims=[32, 128],
    peer_limit_s=5.0,
    matrix_layers=4,
    matrix_n=1_000,
    matrix_d=64,
    matrix_peer_limit_s=5.0,
    stream_n=100_000,
    stream_d=64,
    throughput_size=1024,
)


# --- flop models ------------------------------------------------------------------------------
#
# What each value minimally needs, counted as dense BLAS/LAPACK work on float64 (symmetry not
# exploited: a Gram or covariance matrix counts as a full gemm, 2·m·k·n), for X (n × p), Y (n × q).
# Dividing by the measured float64 matmul throughput gives the "bound" a perfect implementation
# would approach; for measures that are not matmul-bound (RSA's ranking, kNN's selection) the
# ratio is printed all the same, with the model below.


def gemm(m: float, k: float, n: float) -> float:
    return 2.0 * m * k * n


def svdvals(m: float, n: float) -> float:
    """Singular values only of an m × n matrix: 4mn² − 4n³/3 for m ≥ n (Golub & Van Loan)."""
    m, n = max(m, n), min(m, n)
    return 4.0 * m * n * n - 4.0 * n**3 / 3.0


def cka_flops(n: float, p: float, q: float) -> float:
    """Centring, then the cheaper of the feature form (XᵀX, YᵀY, YᵀX: 2n·p² + 2n·q² + 2n·p·q)
    and the Gram form (XXᵀ, YYᵀ: 2n²·p + 2n²·q, then three n² inner products)."""
    feature = gemm(p, n, p) + gemm(q, n, q) + gemm(p, n, q)
    gram = gemm(n, p, n) + gemm(n, q, n) + 3 * n * n
    return 2 * n * (p + q) + min(feature, gram)


def debiased_cka_flops(n: float, p: float, q: float) -> float:
    """Linear CKA's products plus the squared row norms (the Gram diagonals)."""
    return cka_flops(n, p, q) + 2 * n * (p + q)


def cca_flops(n: float, p: float, q: float) -> float:
    """Covariance route: XᵀX, YᵀY, XᵀY, two Choleskys (p³/3, q³/3), two triangular solves on the
    p × q cross-covariance (p²q + pq²), singular values of the whitened p × q matrix."""
    covariances = gemm(p, n, p) + gemm(q, n, q) + gemm(p, n, q)
    return 2 * n * (p + q) + covariances + (p**3 + q**3) / 3 + p * p * q + p * q * q + svdvals(p, q)


def procrustes_flops(n: float, p: float, q: float) -> float:
    """Centre and normalise both sides, XᵀY, and the singular values of that p × q product."""
    return 3 * n * (p + q) + gemm(p, n, q) + svdvals(p, q)


def rsa_flops(n: float, p: float, q: float) -> float:
    """Per side: standardise the rows, the n × n correlation gemm, and a sort of the
    N = n(n − 1)/2 dissimilarities counted as N·log₂N operations; then one N-long correlation."""
    pairs = n * (n - 1) / 2
    ranking = pairs * math.log2(pairs)
    return sum(3 * n * d + gemm(n, d, n) + ranking for d in (p, q)) + 2 * pairs


def knn_flops(n: float, p: float, q: float) -> float:
    """Per side: unit rows, the n × n similarity gemm, and an O(n²) selection of the k largest
    per row; then the n·k intersection."""
    return sum(3 * n * d + gemm(n, d, n) + n * n for d in (p, q)) + n * KNN_K


FLOPS: dict[str, Callable[[float, float, float], float]] = {
    "cka/linear": cka_flops,
    "cka/linear-debiased": debiased_cka_flops,
    "cca/mean": cca_flops,
    "procrustes/angular": procrustes_flops,
    "rsa/correlation-spearman": rsa_flops,
    "knn/mutual": knn_flops,
}


def matrix_flops(n: float, dims_a: list[int], dims_b: list[int]) -> float:
    """A layer × layer matrix of linear CKA, feature form: every layer's centring and
    self-product once, Σ 2n·pᵢ² + Σ 2n·qⱼ², then one cross-product per pair, L₁·L₂ · 2n·p·q."""
    singles = sum(2 * n * d + gemm(d, n, d) for d in [*dims_a, *dims_b])
    return singles + sum(gemm(p, n, q) for p in dims_a for q in dims_b)


# --- peers ------------------------------------------------------------------------------------
#
# Test-only dependencies pinned in pyproject.toml; what each computes, and its convention:
#
# - plain numpy (linear CKA): ‖XᵀY‖²_F / (‖XᵀX‖_F ‖YᵀY‖_F) on float64 copies centred in place,
#   the feature form at every size; what "never slower than plain numpy" is measured against.
# - repsim 0.1.5 (C++, OpenMP). ``cka(kernel_type="linear", estimator="gretton")``: plug-in linear
#   CKA, the same estimator as cka/linear, from n × n Gram matrices (time grows as n³ here).
#   Debiased CKA: ``hsic(estimator="song")`` (Song et al.'s unbiased HSIC on zero-diagonal linear
#   Grams) normalised by its own diagonal, which is cka/linear-debiased; repsim's own
#   ``cka(estimator="song")`` is not, it divides by plug-in HSICs (see test_cka_variants.py).
#   ``cca(summary_type="pillai")``: Σρ / min(r_X, r_Y), i.e. mean CCA; its cost grows as d⁴.
# - ckatorch 1.0.3 (torch). ``cka_base(x, y)``: casts to float64, builds the n × n linear Grams
#   and centres them (Kornblith et al.'s published code); ``unbiased=True`` is Kornblith's
#   unbiased centring, which is Song's estimator: cka/linear-debiased.
# - rsatoolbox 0.3.2. ``calc_rdm(method="correlation")`` (1 − Pearson between samples, as
#   rsa/correlation-spearman) and ``compare(method="spearman")`` (rankdata with average ties,
#   then the correlation of the ranks); it holds full n × n RDMs.
# - scipy. No Procrustes shape metric installable from PyPI takes arrays (netrep is only on
#   GitHub), so the peer is ``scipy.linalg.orthogonal_procrustes`` on centred, unit-Frobenius,
#   zero-padded arrays: its second value is ‖XᵀY‖_*, whose arccos is Williams et al.'s angular
#   distance (procrustes/angular).
# - Mutual kNN: Huh et al.'s reference code (platonic-rep) is not on PyPI; the peer is written
#   here: sklearn's brute-force cosine ``NearestNeighbors(k)`` (``kneighbors()`` without a query
#   excludes each sample itself), then a Python set intersection per sample, mean |∩| / k.
#
# Not used: torch-cka 0.21 compares two nn.Modules through DataLoaders and forward hooks, not
# arrays, averaging a float32 minibatch HSIC₁ over batches; similarity-repository 0.0.1 depends
# on netrep through a git URL, which pip refuses for a package from PyPI.


def _numpy_cka(x, y):
    """The plain float64 numpy feature-space implementation a researcher would write (numpy's
    matmul computes XᵀX as a SYRK, half a general product's flops)."""
    x = x.astype(np.float64)
    y = y.astype(np.float64)
    x -= x.mean(axis=0)
    y -= y.mean(axis=0)
    cross = np.linalg.norm(x.T @ y) ** 2
    return float(cross / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)))


def _repsim_cka(x, y):
    import repsim

    return float(repsim.cka([x, y], kernel_type="linear", estimator="gretton")[0, 1])


def _repsim_debiased(x, y):
    import repsim

    hsic = repsim.hsic([x, y], kernel_type="linear", estimator="song")
    return float(hsic[0, 1] / np.sqrt(hsic[0, 0] * hsic[1, 1]))


def _ckatorch(unbiased: bool):
    def run(x, y):
        import ckatorch
        import torch

        return float(ckatorch.cka_base(torch.from_numpy(x), torch.from_numpy(y), unbiased=unbiased))

    return run


def _repsim_cca(x, y):
    import repsim

    return float(repsim.cca([x, y], summary_type="pillai")[0, 1])


def _scipy_procrustes(x, y):
    from scipy.linalg import orthogonal_procrustes

    def shape(z):
        z = z.astype(np.float64) - z.mean(axis=0, dtype=np.float64)
        return z / np.linalg.norm(z)

    a, b = shape(x), shape(y)
    width = max(a.shape[1], b.shape[1])
    a = np.pad(a, ((0, 0), (0, width - a.shape[1])))
    b = np.pad(b, ((0, 0), (0, width - b.shape[1])))
    _, nuclear = orthogonal_procrustes(a, b)
    return float(np.arccos(min(1.0, nuclear)))


def _rsatoolbox(x, y):
    import rsatoolbox

    rdms = [
        rsatoolbox.rdm.calc_rdm(rsatoolbox.data.Dataset(z), method="correlation") for z in (x, y)
    ]
    return float(rsatoolbox.rdm.compare(rdms[0], rdms[1], method="spearman")[0, 0])


def _sklearn_mutual_knn(x, y):
    from sklearn.neighbors import NearestNeighbors

    def graph(z):
        search = NearestNeighbors(n_neighbors=KNN_K, metric="cosine", algorithm="brute").fit(z)
        return search.kneighbors(return_distance=False)

    shared = [len(set(a) & set(b)) for a, b in zip(graph(x), graph(y), strict=True)]
    return float(np.mean(shared)) / KNN_K


@dataclass
class Peer:
    """A peer implementation with its cost model: time ∝ n^time_n · d^time_d, memory ∝ n^mem_n
    (exponents from its algorithm, checked here on n from 1k to 50k and d from 256 to 2048:
    repsim's CKA is n³, its CCA d⁴; the Gram-based peers hold several n × n matrices)."""

    name: str
    run: Callable[[np.ndarray, np.ndarray], float]
    time_n: float
    time_d: float
    mem_n: float
    runs: dict[tuple[int, int], tuple[float, float]] = field(default_factory=dict, repr=False)

    def record(self, n: int, d: int, result: dict) -> None:
        self.runs[(n, d)] = (result["seconds"], result["mib"])

    def estimate(self, n: int, d: int) -> Estimate | None:
        """Extrapolated from the largest n this peer ran at, the nearest d first; None before
        its first run."""
        if not self.runs:
            return None
        n0, d0 = max(self.runs, key=lambda run: (-abs(math.log(run[1] / d)), run[0]))
        seconds, mib = self.runs[(n0, d0)]
        scale = (n / n0) ** self.time_n * (d / d0) ** self.time_d
        return Estimate(seconds * scale, max(mib, 1.0) * (n / n0) ** self.mem_n, n0, d0)


@dataclass
class Estimate:
    seconds: float
    mib: float
    n: int  # the case it was extrapolated from
    d: int

    @property
    def source(self) -> str:
        return f"est. from n={self.n:,}, d={self.d}"


def make_peers() -> dict[str, list[Peer]]:
    return {
        "cka/linear": [
            Peer(PLAIN_NUMPY, _numpy_cka, 1, 2, 1),
            Peer("repsim 0.1.5 gretton", _repsim_cka, 3, 0.5, 2),
            Peer("ckatorch 1.0.3", _ckatorch(False), 2, 1, 2),
        ],
        "cka/linear-debiased": [
            Peer("repsim 0.1.5 hsic song", _repsim_debiased, 2, 0.5, 2),
            Peer("ckatorch 1.0.3 unbiased", _ckatorch(True), 2, 1, 2),
        ],
        "cca/mean": [Peer("repsim 0.1.5 pillai", _repsim_cca, 1.5, 4, 1)],
        "procrustes/angular": [Peer("scipy orthogonal_procrustes", _scipy_procrustes, 1, 2, 1)],
        "rsa/correlation-spearman": [Peer("rsatoolbox 0.3.2", _rsatoolbox, 2.3, 0.5, 2)],
        "knn/mutual": [Peer("sklearn NN + sets (here)", _sklearn_mutual_knn, 2, 0.5, 1)],
    }


def _ours(measure_id: str) -> Callable[[np.ndarray, np.ndarray], float]:
    def run(x, y):
        from analysis.measures.registry import MEASURES

        measure = MEASURES[measure_id]
        return float(measure.score(measure.prepare(x, "X"), measure.prepare(y, "Y")))

    return run


def _ours_with_baseline(x, y):
    """Linear CKA through compare_layers: the value and its permutation baseline (exact, in
    closed form, for linear CKA; 10 row shuffles for measures without one)."""
    from analysis.measures.engine import compare_layers
    from analysis.measures.registry import MEASURES

    result = compare_layers(MEASURES["cka/linear"], [("X", x)], [("Y", y)], n_permutations=10)
    return float(result[("X", "Y")].value)


# --- the worker -------------------------------------------------------------------------------


def _status_mib(key: str) -> float:
    text = Path("/proc/self/status").read_text()
    return int(re.search(rf"^{key}:\s+(\d+) kB", text, re.MULTILINE).group(1)) / 1024


class _Peak:
    """High-water RSS (MiB) of this process during the block, above its RSS at the start; with
    ``anonymous``, also the peak of anonymous memory (sampled every 10 ms), which leaves out the
    pages of memory-mapped files."""

    def __init__(self, anonymous: bool = False):
        self.anonymous = anonymous
        self.rss = self.anon = 0.0

    def __enter__(self) -> _Peak:
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
        self._base = _status_mib("VmRSS")
        self._base_anon = _status_mib("RssAnon")
        self._peak_anon = self._base_anon
        self._stop = threading.Event()
        if self.anonymous:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            self._peak_anon = max(self._peak_anon, _status_mib("RssAnon"))

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self.anonymous:
            self._thread.join()
        self.rss = _status_mib("VmHWM") - self._base
        self.anon = max(self._peak_anon, _status_mib("RssAnon")) - self._base_anon


SHORT_CALL_S = 1.0
SHORT_BUDGET_S = 3.0


def _timed(fn: Callable[[], object], anonymous: bool = False, repeats: int = 1) -> dict:
    """The best time of several calls, and the call's peak memory: a call under SHORT_CALL_S
    is repeated for SHORT_BUDGET_S (at least 3 and at most 50 calls in all: on a machine
    shared with other work, a short call's time varies tenfold with what else gets the
    cores), a longer one ``repeats`` times."""
    with _Peak(anonymous) as peak:
        began = start = time.perf_counter()
        value = fn()
        best = time.perf_counter() - start
        calls = 1
        while (calls < repeats) or (
            best < SHORT_CALL_S
            and calls < 50
            and (calls < 3 or time.perf_counter() - began < SHORT_BUDGET_S)
        ):
            start = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - start)
            calls += 1
    return {"seconds": best, "value": value, "mib": peak.rss, "anon_mib": peak.anon}


def _throughput(size: int) -> dict[str, float]:
    """GFLOP/s of a size × size matrix product, best of three, float64 and float32."""
    import torch

    rng = np.random.default_rng(0)
    a64 = rng.standard_normal((size, size))
    cases = {
        "numpy float64": (a64, np.matmul),
        "torch float64": (torch.from_numpy(a64), torch.mm),
        "numpy float32": (a64.astype(np.float32), np.matmul),
    }
    result = {}
    for label, (a, op) in cases.items():
        op(a, a)  # warm-up
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            op(a, a)
            best = min(best, time.perf_counter() - start)
        result[label] = gemm(size, size, size) / best / 1e9
    return result


def _linear_interleaved(x_path: str, y_path: str, rounds: int, size: int) -> dict:
    """Linear CKA, ours and plain numpy, and the float64 matmul throughput, in turns, each
    kept at its best over ``rounds`` (a call much shorter than the matmul is repeated up to 20
    times a round): on a machine shared with other work the three then see the same
    conditions, which separate runs minutes apart do not."""
    import torch

    x, y = np.load(x_path), np.load(y_path)
    ours = _ours("cka/linear")
    a64 = np.random.default_rng(0).standard_normal((size, size))
    products = [(a64, np.matmul), (torch.from_numpy(a64), torch.mm)]
    best = {"ours": math.inf, "numpy": math.inf}
    values = {}
    rate = 0.0
    impls = [("ours", ours), ("numpy", _numpy_cka)]
    inner = 1
    for turn in range(rounds):
        for repeat in range(inner):  # calls short against the matmul are repeated more
            for label, fn in impls if (turn + repeat) % 2 == 0 else impls[::-1]:
                start = time.perf_counter()
                values[label] = fn(x, y)
                best[label] = min(best[label], time.perf_counter() - start)
        inner = int(min(20, max(1, SHORT_CALL_S / max(best.values()))))
        for a, op in products:
            start = time.perf_counter()
            op(a, a)
            rate = max(rate, gemm(size, size, size) / (time.perf_counter() - start) / 1e9)
    return {**best, "gflops": rate, "diff": abs(values["ours"] - values["numpy"])}


def _matrix(impl: str, path: str, pairs: int | None) -> dict:
    """Linear CKA between the two halves of the stacked layers in ``path``."""
    from analysis.measures.engine import compare_layers
    from analysis.measures.registry import MEASURES

    stacked = np.load(path)
    half = len(stacked) // 2
    layers_a = [(f"a{i}", stacked[i]) for i in range(half)]
    layers_b = [(f"b{j}", stacked[half + j]) for j in range(half)]
    measure = MEASURES["cka/linear"]

    def run():
        if impl == "compare_layers":
            results = compare_layers(measure, layers_a, layers_b, n_permutations=1)
            return {(a, b): r.value for (a, b), r in results.items()}
        if impl == "values":
            prepared_a = [(a, measure.prepare(x, a)) for a, x in layers_a]
            prepared_b = [(b, measure.prepare(y, b)) for b, y in layers_b]
            return {(a, b): measure.score(pa, pb) for a, pa in prepared_a for b, pb in prepared_b}
        peer = next(p.run for p in make_peers()["cka/linear"] if p.name == impl)
        keys = [(a, x, b, y) for a, x in layers_a for b, y in layers_b][:pairs]
        return {(a, b): peer(x, y) for a, x, b, y in keys}

    with _Peak() as peak:
        start = time.perf_counter()
        values = run()
        seconds = time.perf_counter() - start
    return {"seconds": seconds, "values": values, "mib": peak.rss}


def _run_task(task: dict) -> dict:
    if task["kind"] == "throughput":
        return _throughput(task["size"])
    if task["kind"] == "matrix":
        return _matrix(task["impl"], task["path"], task.get("pairs"))
    if task["kind"] == "linear":
        return _linear_interleaved(task["x"], task["y"], task["rounds"], task["size"])
    mmap = "r" if task.get("mmap") else None
    x, y = np.load(task["x"], mmap_mode=mmap), np.load(task["y"], mmap_mode=mmap)
    if task["impl"] == "ours":
        fn = _ours(task["measure"])
    elif task["impl"] == "ours+baseline":
        fn = _ours_with_baseline
    else:
        fn = next(p.run for p in make_peers()[task["measure"]] if p.name == task["impl"])
    return _timed(lambda: fn(x, y), bool(task.get("mmap")), task.get("repeats", 1))


def _serve(conn) -> None:
    from workers.cores import keep_freed_memory

    keep_freed_memory()  # as a worker's pool process does
    # Import everything up front, so that no timed call pays for an import.
    import ckatorch  # noqa: F401
    import repsim  # noqa: F401
    import rsatoolbox  # noqa: F401
    import scipy.linalg  # noqa: F401
    import sklearn.neighbors  # noqa: F401
    import torch  # noqa: F401

    import analysis.measures.registry  # noqa: F401
    from analysis.errors import InputError

    while (task := conn.recv()) is not None:
        try:
            conn.send(_run_task(task))
        except InputError as error:
            conn.send({"refused": str(error)})
        except Exception as error:  # a peer's failure is reported in its cell
            conn.send({"error": f"{type(error).__name__}: {error}"})


class Worker:
    """The process every case runs in; replaced when a call overruns or the process dies."""

    def __init__(self) -> None:
        self._context = multiprocessing.get_context("spawn")
        self._start()

    def _start(self) -> None:
        self._conn, child = self._context.Pipe()
        self._process = self._context.Process(target=_serve, args=(child,), daemon=True)
        self._process.start()
        child.close()

    def call(self, task: dict, timeout: float) -> dict:
        self._conn.send(task)
        if self._conn.poll(timeout):
            try:
                return self._conn.recv()
            except EOFError:
                pass
            self._process.join()
            outcome = {"error": f"worker died (exit code {self._process.exitcode})"}
        else:
            outcome = {"error": f"killed after {timeout:.0f} s"}
        self._process.kill()
        self._process.join()
        self._start()
        return outcome

    def close(self) -> None:
        self._conn.send(None)
        self._process.join(timeout=10)


# --- data -------------------------------------------------------------------------------------

CHUNK_ROWS = 50_000


def write_pair(directory: Path, n: int, d: int, seed: int = 0) -> tuple[str, str]:
    """Seeded correlated float32 activations X (n × d) and Y = XW/√d + noise/2, written to .npy
    files chunk by chunk (so n = 1,000,000 needs no more memory than a chunk)."""
    rng = np.random.default_rng(seed)
    weights = (rng.standard_normal((d, d)) / np.sqrt(d)).astype(np.float32)
    paths = str(directory / f"x-{n}-{d}.npy"), str(directory / f"y-{n}-{d}.npy")
    x_out, y_out = (np.lib.format.open_memmap(p, "w+", np.float32, (n, d)) for p in paths)
    for start in range(0, n, CHUNK_ROWS):
        rows = min(CHUNK_ROWS, n - start)
        x = rng.standard_normal((rows, d), dtype=np.float32)
        x_out[start : start + rows] = x
        y_out[start : start + rows] = x @ weights + 0.5 * rng.standard_normal((rows, d), np.float32)
    x_out.flush()
    y_out.flush()
    del x_out, y_out
    return paths


def write_models(directory: Path, layers: int, n: int, d: int, seed: int = 1) -> str:
    """Two random "models" of ``layers`` layers each, stacked (2·layers × n × d, float32). Model
    A's layer l is a random linear map of layer l − 1 plus noise; model B's layer l is a random
    rotation of A's plus more noise, so the matrix has a strong diagonal, as two seeds would."""
    rng = np.random.default_rng(seed)
    path = str(directory / "models.npy")
    out = np.lib.format.open_memmap(path, "w+", np.float32, (2 * layers, n, d))
    hidden = rng.standard_normal((n, d), dtype=np.float32)
    for layer in range(layers):
        mix = (rng.standard_normal((d, d)) / np.sqrt(d)).astype(np.float32)
        hidden = hidden @ mix + 0.3 * rng.standard_normal((n, d), dtype=np.float32)
        rotation = np.linalg.qr(rng.standard_normal((d, d)))[0].astype(np.float32)
        out[layer] = hidden
        out[layers + layer] = hidden @ rotation + 0.5 * rng.standard_normal((n, d), np.float32)
    out.flush()
    del out
    return path


# --- the report -------------------------------------------------------------------------------


def seconds_text(seconds: float) -> str:
    return f"{seconds:.3g}" if seconds < 100 else f"{seconds:,.0f}"


def reason(result: dict) -> str:
    text = (result.get("refused") or result.get("error") or "").replace("\n", " ")
    return text if len(text) <= 100 else text[:99] + "…"


PAIR_HEADER = (
    f"{'n':>9} {'d':>5}  {'measure':<26} {'ours s':>8} {'bound s':>8} {'ours/bnd':>8} "
    f"{'ours MiB':>8}  {'peer':<27} {'peer s':>8} {'peer/ours':>9} {'peer MiB':>8} "
    f"{'max|diff|':>9}"
)


def ours_cells(ours: dict, bound_s: float) -> str:
    if "seconds" not in ours:
        return f"ours: {reason(ours)}"
    return (
        f"{seconds_text(ours['seconds']):>8} {seconds_text(bound_s):>8} "
        f"{ours['seconds'] / bound_s:>8.1f} {max(0.0, ours['mib']):>8.0f}"
    )


def peer_cells(ours: dict, peer: dict) -> str:
    if "seconds" not in peer:
        return reason(peer) or peer["skipped"]
    speed = diff = ""
    if "seconds" in ours:
        speed = f"{peer['seconds'] / ours['seconds']:.3g}×"
        diff = f"{abs(ours['value'] - peer['value']):.1e}"
    return f"{seconds_text(peer['seconds']):>8} {speed:>9} {max(0.0, peer['mib']):>8.0f} {diff:>9}"


def run_peer(worker: Worker, peer: Peer, task: dict, n: int, d: int, limit_s: float) -> dict:
    """The peer's result on ``task``, or why it was skipped (by its cost model)."""
    estimate = peer.estimate(n, d)
    if estimate and estimate.mib > MEMORY_LIMIT_MIB:
        return {"skipped": f"skipped (~{estimate.mib / 1024:.0f} GiB {estimate.source})"}
    if estimate and estimate.seconds > limit_s:
        return {
            "skipped": f"skipped (~{seconds_text(estimate.seconds)} s {estimate.source}; "
            f"limit {limit_s:.0f} s)"
        }
    result = worker.call(task, timeout=max(3 * estimate.seconds, 60) if estimate else 3 * limit_s)
    if "seconds" in result:
        peer.record(n, d, result)
    return result


def bench_pairs(
    worker: Worker,
    config: Config,
    directory: Path,
    gflops: float,
    peers: dict[str, list[Peer]],
    measure_ids: list[str],
    repeats: int,
) -> None:
    print(
        "\n## Single pairs: X (n × d) against Y = XW/√d + noise/2, float32\n"
        f"ours s: prepare both layers + score (best of up to 50 calls within 3 s when under 1 s, "
        f"else of {repeats}); "
        "bound s: the value's "
        "minimal flops (FLOPS in the source) at the float64 throughput above; MiB: peak RSS of "
        "the call above its loaded inputs; max|diff|: |ours − peer|. value + baseline: through "
        "compare_layers(n_permutations=10), whose baseline for linear CKA is exact, in closed "
        "form.\n"
    )
    print(PAIR_HEADER)
    linear: list[tuple[int, int, dict, dict, float]] = []
    for n in config.sizes:
        for d in config.dims:
            x, y = write_pair(directory, n, d)
            for measure_id in measure_ids:
                bound_s = FLOPS[measure_id](n, d, d) / (gflops * 1e9)
                task = {"kind": "pair", "measure": measure_id, "x": x, "y": y, "repeats": repeats}
                ours = worker.call({**task, "impl": "ours"}, timeout=1800)
                left = f"{n:>9,} {d:>5}  {measure_id:<26} {ours_cells(ours, bound_s)}"
                if "seconds" not in ours:
                    print(left, flush=True)
                    left = " " * 78
                for peer in peers[measure_id]:
                    result = run_peer(
                        worker, peer, {**task, "impl": peer.name}, n, d, config.peer_limit_s
                    )
                    print(f"{left:<78}  {peer.name:<27} {peer_cells(ours, result)}", flush=True)
                    left = " " * 78
                    if measure_id == "cka/linear" and peer.name == PLAIN_NUMPY:
                        linear.append((n, d, ours, result, bound_s))
                if measure_id == "cka/linear":
                    baseline = worker.call({**task, "impl": "ours+baseline"}, timeout=1800)
                    label = "  value + baseline"
                    print(f"{n:>9,} {d:>5}  {label:<26} {ours_cells(baseline, bound_s)}")
            Path(x).unlink()
            Path(y).unlink()
    if linear:
        print_linear_summary(linear)


def print_linear_summary(rows: list[tuple[int, int, dict, dict, float]]) -> None:
    """Linear CKA's targets (issue 19): ours within 1.5× the bound and no slower than plain
    numpy, at every size; the three figures side by side."""
    print(
        "\n## Linear CKA: ours, plain numpy float64 and the matmul bound, side by side\n"
        "target: ours/bound ≤ 1.5 and ours/numpy ≤ 1.0 at every size\n"
    )
    print(
        f"{'n':>9} {'d':>5} {'ours s':>8} {'numpy s':>8} {'bound s':>8} {'ours/bnd':>8} "
        f"{'numpy/bnd':>9} {'ours/numpy':>10}"
    )
    for n, d, ours, numpy_result, bound_s in rows:
        if "seconds" not in ours or "seconds" not in numpy_result:
            print(f"{n:>9,} {d:>5} {reason(ours) or reason(numpy_result)}")
            continue
        mine, theirs = ours["seconds"], numpy_result["seconds"]
        print(
            f"{n:>9,} {d:>5} {seconds_text(mine):>8} {seconds_text(theirs):>8} "
            f"{seconds_text(bound_s):>8} {mine / bound_s:>8.2f} {theirs / bound_s:>9.2f} "
            f"{mine / theirs:>10.2f}"
        )


def bench_linear(worker: Worker, config: Config, directory: Path, rounds: int) -> None:
    """Linear CKA's targets measured in turns (``_linear_interleaved``): ours, plain numpy and
    the bound from the throughput measured between them."""
    print(
        f"\n## Linear CKA in turns: ours, plain numpy float64 and a {config.throughput_size}² "
        f"float64 matmul (numpy and torch), {rounds} rounds, each at its best\n"
        "bound s: the value's minimal flops (cka_flops) at the best matmul rate of these "
        "rounds; target: ours/bound ≤ 1.5 and ours/numpy ≤ 1.0 at every size\n"
    )
    print(
        f"{'n':>9} {'d':>5} {'ours s':>8} {'numpy s':>8} {'GFLOP/s':>8} {'bound s':>8} "
        f"{'ours/bnd':>8} {'numpy/bnd':>9} {'ours/numpy':>10} {'|diff|':>8}"
    )
    for n in config.sizes:
        for d in config.dims:
            x, y = write_pair(directory, n, d)
            task = {"kind": "linear", "x": x, "y": y, "rounds": rounds}
            result = worker.call({**task, "size": config.throughput_size}, timeout=3600)
            Path(x).unlink()
            Path(y).unlink()
            if "ours" not in result:
                print(f"{n:>9,} {d:>5} {reason(result)}", flush=True)
                continue
            bound_s = cka_flops(n, d, d) / (result["gflops"] * 1e9)
            mine, theirs = result["ours"], result["numpy"]
            print(
                f"{n:>9,} {d:>5} {seconds_text(mine):>8} {seconds_text(theirs):>8} "
                f"{result['gflops']:>8.1f} {seconds_text(bound_s):>8} {mine / bound_s:>8.2f} "
                f"{theirs / bound_s:>9.2f} {mine / theirs:>10.2f} {result['diff']:>8.1e}",
                flush=True,
            )


def bench_matrix(
    worker: Worker, config: Config, directory: Path, gflops: float, peers: dict[str, list[Peer]]
) -> None:
    """Our layer × layer matrix (through compare_layers, and bare values) against linear CKA
    peers pair by pair; a peer whose full matrix would exceed the limit is timed on a few
    pairs and scaled, or only estimated from its single-pair cost model."""
    layers, n, d = config.matrix_layers, config.matrix_n, config.matrix_d
    pairs = layers * layers
    print(
        f"\n## Layer × layer matrix: two random {layers}-layer models, n = {n:,}, d = {d}, "
        f"float32, linear CKA, {pairs} pairs\n"
        f"bound: Σ 2n·pᵢ² + Σ 2n·qⱼ² + {pairs} · 2n·p·q flops at the float64 throughput; "
        "peer/ours against our bare values.\n"
    )
    path = write_models(directory, layers, n, d)
    bound_s = matrix_flops(n, [d] * layers, [d] * layers) / (gflops * 1e9)
    print(
        f"{'':<46} {'s':>8} {'bound s':>8} {'s/bound':>8} {'MiB':>8} {'peer/ours':>9} "
        f"{'max|diff|':>9}"
    )

    def line(label: str, result: dict, reference: dict | None = None) -> None:
        if "seconds" not in result:
            print(f"{label:<46} {reason(result) or result['skipped']}", flush=True)
            return
        full = result["seconds"] * pairs / len(result["values"])
        speed = diff = ""
        if reference and "seconds" in reference:
            speed = f"{full / reference['seconds']:.3g}×"
            worst = max(abs(v - reference["values"][k]) for k, v in result["values"].items())
            diff = f"{worst:.1e}"
        print(
            f"{label:<46} {seconds_text(full):>8} {seconds_text(bound_s):>8} "
            f"{full / bound_s:>8.1f} {max(0.0, result['mib']):>8.0f} {speed:>9} {diff:>9}",
            flush=True,
        )

    task = {"kind": "matrix", "path": path}
    values = worker.call({**task, "impl": "values"}, timeout=3600)
    line("ours: prepare each layer once, score pairs", values)
    line(
        "ours: compare_layers(n_permutations=1)",
        worker.call({**task, "impl": "compare_layers"}, timeout=3600),
        values,
    )
    sample = 2
    for peer in peers["cka/linear"]:
        estimate = peer.estimate(n, d)
        if estimate and (
            estimate.mib > MEMORY_LIMIT_MIB
            or estimate.seconds * sample > config.matrix_peer_limit_s
        ):
            line(
                peer.name,
                {
                    "skipped": f"not run: ~{seconds_text(estimate.seconds)} s and "
                    f"~{estimate.mib:,.0f} MiB per pair ({estimate.source}), "
                    f"~{seconds_text(estimate.seconds * pairs)} s for {pairs} pairs"
                },
            )
            continue
        probe = worker.call({**task, "impl": peer.name, "pairs": sample}, timeout=1800)
        if "seconds" in probe and probe["seconds"] * pairs / sample <= config.matrix_peer_limit_s:
            timeout = 3 * probe["seconds"] * pairs / sample + 60
            line(
                f"{peer.name} (all pairs)",
                worker.call({**task, "impl": peer.name, "pairs": pairs}, timeout=timeout),
                values,
            )
        else:
            line(f"{peer.name} ({sample} pairs timed, scaled)", probe, values)
    Path(path).unlink()


def bench_streaming(worker: Worker, config: Config, directory: Path, gflops: float) -> None:
    n, d = config.stream_n, config.stream_d
    print(f"\n## Streaming: linear CKA from memory-mapped .npy files, n = {n:,}, d = {d}\n")
    start = time.perf_counter()
    x, y = write_pair(directory, n, d)
    size = (Path(x).stat().st_size + Path(y).stat().st_size) / MIB
    print(
        f"wrote two float32 files, {size:,.0f} MiB together, in {time.perf_counter() - start:.1f} s"
    )
    result = worker.call(
        {"kind": "pair", "impl": "ours", "measure": "cka/linear", "x": x, "y": y, "mmap": True},
        timeout=1800,
    )
    bound_s = cka_flops(n, d, d) / (gflops * 1e9)
    if "seconds" in result:
        print(
            f"ours {seconds_text(result['seconds'])} s, bound {seconds_text(bound_s)} s "
            f"(ours/bound {result['seconds'] / bound_s:.1f}); peak RSS +{result['mib']:,.0f} MiB "
            f"(mapped file pages included), peak anonymous memory +{result['anon_mib']:,.0f} MiB "
            f"(sampled every 10 ms); CKA = {result['value']:.6f}"
        )
    else:
        print(f"ours: {reason(result)}")
    Path(x).unlink()
    Path(y).unlink()


def describe_machine(worker: Worker, size: int) -> float:
    """Print the date, BLAS configuration and matmul throughput; return the float64 GFLOP/s
    the bounds use (the better of numpy and torch)."""
    import threadpoolctl
    import torch

    now = datetime.datetime.now().isoformat(timespec="seconds")
    print(f"# RepLens measure benchmark, {now}")
    print(
        f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    for pool in threadpoolctl.threadpool_info():
        library = Path(pool["filepath"]).name
        print(
            f"  {pool['user_api']}: {pool['internal_api']} {pool.get('version')} "
            f"{pool.get('architecture', '')}, {pool['num_threads']} threads ({library})"
        )
    print(f"  numpy {np.__version__}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    rates = worker.call({"kind": "throughput", "size": size}, timeout=600)
    text = ", ".join(f"{label} {rate:.1f}" for label, rate in rates.items())
    best = max(rates["numpy float64"], rates["torch float64"])
    print(f"matmul {size} × {size}, best of 3: {text} GFLOP/s; bounds use {best:.1f} (float64)")
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small smoke configuration")
    parser.add_argument(
        "--measures",
        default=",".join(MEASURE_IDS),
        help="comma-separated measure ids of the single pairs (default: all)",
    )
    parser.add_argument(
        "--sections",
        default="pairs,linear,matrix,streaming",
        help="comma-separated sections to run: pairs, linear (linear CKA, ours, plain numpy and "
        "the matmul in turns), matrix, streaming (default: all)",
    )
    parser.add_argument(
        "--peers", help="comma-separated beginnings of the peer names to run (default: all)"
    )
    parser.add_argument("--sizes", help="comma-separated n of the single pairs")
    parser.add_argument("--dims", help="comma-separated d of the single pairs")
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="time calls over a second this many times and keep the best (on a loaded machine)",
    )
    args = parser.parse_args()
    config = QUICK if args.quick else FULL
    if args.sizes:
        config.sizes = [int(v) for v in args.sizes.split(",")]
    if args.dims:
        config.dims = [int(v) for v in args.dims.split(",")]
    measure_ids = [m for m in args.measures.split(",") if m]
    unknown = set(measure_ids) - set(MEASURE_IDS)
    if unknown:
        parser.error(f"unknown measures {sorted(unknown)}; known: {', '.join(MEASURE_IDS)}")
    sections = set(args.sections.split(","))
    directory = Path(tempfile.mkdtemp(prefix="replens-bench-", dir="/tmp"))
    started = time.perf_counter()
    worker = Worker()
    try:
        gflops = describe_machine(worker, config.throughput_size)
        peers = make_peers()
        if args.peers:
            wanted = tuple(args.peers.split(","))
            peers = {m: [p for p in ps if p.name.startswith(wanted)] for m, ps in peers.items()}
        if "pairs" in sections:
            bench_pairs(worker, config, directory, gflops, peers, measure_ids, args.repeats)
        if "linear" in sections:
            bench_linear(worker, config, directory, max(3, args.repeats))
        if "matrix" in sections:
            bench_matrix(worker, config, directory, gflops, peers)
        if "streaming" in sections:
            bench_streaming(worker, config, directory, gflops)
        rates = worker.call({"kind": "throughput", "size": config.throughput_size}, timeout=600)
        text = ", ".join(f"{label} {rate:.1f}" for label, rate in rates.items())
        print(f"\nmatmul again at the end: {text} GFLOP/s; load average {os.getloadavg()[0]:.2f}")
    finally:
        worker.close()
        shutil.rmtree(directory, ignore_errors=True)
    print(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
