"""Every measure RepLens offers, by stable id. The UI and API list them from here."""

from __future__ import annotations

from analysis.measures.cca import PWCCA, SVCCA, MeanCCA
from analysis.measures.cka import RBFCKA, DebiasedCKA, LinearCKA
from analysis.measures.engine import Measure
from analysis.measures.knn import KNNJaccard, MutualKNN
from analysis.measures.procrustes import ProcrustesAngular, ProcrustesEuclidean
from analysis.measures.regression import RidgePredictivity
from analysis.measures.relative import RelativeSimilarity
from analysis.measures.rsa import RSA, EuclideanRSA
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
        MutualKNN(),
        KNNJaccard(),
        RidgePredictivity(),
        UnitMatching(),
        RelativeSimilarity(),
    ]
}
