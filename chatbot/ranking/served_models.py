"""The home's learned ranking models, loaded once per process: interaction CF and the ranker.

    cf = interaction_model(settings)    # None: no CF signal is weighted, or none was indexed
    ranker = learned_ranker(settings)   # None: weighted RRF (the fallback)

The `Recommender` calls both once, when it is built, and shares them across sessions.
"""

from __future__ import annotations

import logging
from typing import Any

from retrieval.interaction_cf import InteractionCF
from retrieval.learned_ranker import LearnedRanker, ServedRanker

log = logging.getLogger(__name__)


def interaction_model(settings: Any) -> InteractionCF | None:
    """The CF model of `settings.interactions_path`, when a CF signal is weighted or a ranker
    is configured (its features read CF); None when neither, or when none was indexed."""
    r = settings.retrieval
    if not (r.interactions_weight or r.rated_weight or r.ranker):
        return None
    path = settings.interactions_path
    if not path.is_file():
        log.warning(
            "no interaction model at %s: the CF signals are empty until "
            "`recochat index --interactions FILE` writes one",
            path,
        )
        return None
    return InteractionCF.load(path)


def learned_ranker(settings: Any) -> ServedRanker | None:
    """The ranker of `retrieval.ranker` (a `recochat fit-ranker` folder), or None."""
    folder = settings.retrieval.ranker
    if folder is None or not str(folder):
        return None
    return ServedRanker(LearnedRanker.load(folder))
