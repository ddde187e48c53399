"""Every measure RepLens offers, by stable id. The UI and API list them from here."""

from __future__ import annotations

from analysis.cca import PWCCA, SVCCA, MeanCCA
from analysis.cka import RBFCKA, DebiasedCKA, LinearCKA
from analysis.knn import KNNJaccard, MutualKNN
from analysis.measures import Measure
from analysis.procrustes import ProcrustesAngular, ProcrustesEuclidean
from analysis.regression import RidgePredictivity
from analysis.relative import RelativeSimilarity
from analysis.rsa import RSA, EuclideanRSA
from analysis.units import UnitMatching

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
