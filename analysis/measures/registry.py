"""Every measure RepLens offers, by stable id, and a one-line definition of each for the pages
beside its values (the full definitions are the measures' docstrings and docs/MEASURES.md).
The UI and API list them from here."""

from __future__ import annotations

from analysis.measures.cca import PWCCA, SVCCA, MeanCCA
from analysis.measures.cka import RBFCKA, DebiasedCKA, LinearCKA
from analysis.measures.engine import Measure
from analysis.measures.knn import KNNJaccard, MutualKNN
from analysis.measures.procrustes import ProcrustesAngular, ProcrustesEuclidean
from analysis.measures.regression import RidgePredictivity
from analysis.measures.relative import RelativeSimilarity
from analysis.measures.rsa import RSA, EuclideanPearsonRSA, EuclideanRSA, PearsonRSA
from analysis.measures.units import UnitMatching

MEASURES: dict[str, Measure] = {
    m.id: m
    for m in [
        LinearCKA(),
        DebiasedCKA(),
        RBFCKA(),
        MeanCCA(),
        SVCCA(),
        PWCCA(),
        ProcrustesAngular(),
        ProcrustesEuclidean(),
        RSA(),
        EuclideanRSA(),
        PearsonRSA(),
        EuclideanPearsonRSA(),
        MutualKNN(),
        KNNJaccard(),
        RidgePredictivity(),
        UnitMatching(),
        RelativeSimilarity(),
    ]
}

DEFINITIONS: dict[str, str] = {
    "cka/linear": "‖YᵀX‖²_F / (‖XᵀX‖_F ‖YᵀY‖_F) on centred activations: 1 = the same up to "
    "rotation and scale; biased towards 1 when n is small against d",
    "cka/linear-debiased": "linear CKA with unbiased HSIC estimates: unrelated data scores "
    "about 0 (slightly negative values are reported as they are), 1 = the same",
    "cka/rbf": "CKA of Gaussian-kernel Gram matrices (bandwidth a fraction of the median "
    "distance): 1 = the same neighbourhood structure",
    "cca/mean": "mean canonical correlation between the two layers: 1 = one is an invertible "
    "linear map of the other",
    "cca/svcca": "mean canonical correlation between the top singular directions of each "
    "layer (those that keep the chosen share of variance)",
    "cca/pwcca": "canonical correlations weighted by how much of the first layer each "
    "canonical direction accounts for",
    "procrustes/angular": "arccos ‖XᵀY‖_* of centred, unit-norm layers: 0 = the same up to "
    "rotation, π/2 = orthogonal",
    "procrustes/euclidean": "√(2 − 2‖XᵀY‖_*): the residual of the best rotation of one "
    "centred, unit-norm layer onto the other; 0 = the same",
    "rsa/correlation-spearman": "Spearman correlation between the two layers' matrices of "
    "1 − Pearson correlation between samples: 1 = same ranking of distances, 0 = unrelated",
    "rsa/euclidean-spearman": "Spearman correlation between the two layers' matrices of "
    "Euclidean distances between samples: 1 = same ranking of distances, 0 = unrelated",
    "rsa/correlation-pearson": "Pearson correlation between the two layers' matrices of "
    "1 − Pearson correlation between samples: 1 = distances in the same proportions (up to an "
    "offset and a scale), 0 = unrelated",
    "rsa/euclidean-pearson": "Pearson correlation between the two layers' matrices of "
    "Euclidean distances between samples: 1 = distances in the same proportions (up to an "
    "offset and a scale), 0 = unrelated",
    "knn/mutual": "mean over samples of the share of its k nearest neighbours found in both "
    "layers: 1 = same neighbours",
    "knn/jaccard": "mean over samples of |shared| / |union| of its k nearest neighbours in "
    "the two layers: 1 = same neighbours",
    "regression/ridge-r2": "held-out R² of the second layer predicted from the first by "
    "cross-validated ridge: 1 = perfectly predicted, 0 = no better than its mean, below 0 worse",
    "units/hungarian": "mean correlation of the unit pairs of a one-to-one matching of units "
    "that maximises total correlation: 1 = the same units",
    "relative/cosine": "mean cosine similarity between each sample's vectors of cosine "
    "similarities to the anchors in the two layers: 1 = the same relative positions",
}


def describe(measure_id: str) -> dict:
    """Measure ``measure_id``'s properties (``Measure.describe``) with its definition."""
    return MEASURES[measure_id].describe() | {"definition": DEFINITIONS[measure_id]}
