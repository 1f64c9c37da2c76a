"""The best-trial row of a study, kept current as trials complete or are imported."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import sessionmaker

from service.db import BestHypRow


def record_if_best(
    sessions: sessionmaker,
    study_id: int,
    number: int,
    params: dict[str, Any],
    fitness: float,
    metrics: dict[str, float],
) -> bool:
    """Store trial ``number`` as the study's best if it beats the current one (ties keep the first)."""
    with sessions.begin() as session:
        best = session.get(BestHypRow, study_id)
        if best is None:
            session.add(
                BestHypRow(study_id=study_id, trial_number=number, fitness=fitness, params=params, metrics=metrics)
            )
            return True
        if fitness > best.fitness:
            best.trial_number, best.fitness, best.params, best.metrics = number, fitness, params, metrics
            return True
    return False
