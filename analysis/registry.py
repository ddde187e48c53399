"""Every measure RepLens offers, by stable id. The UI and API list them from here."""

from __future__ import annotations

from analysis.cka import LinearCKA
from analysis.measures import Measure
from analysis.regression import RidgePredictivity
from analysis.relative import RelativeSimilarity
from analysis.units import UnitMatching

MEASURES: dict[str, Measure] = {
    m.id: m for m in [LinearCKA(), RidgePredictivity(), UnitMatching(), RelativeSimilarity()]
}
