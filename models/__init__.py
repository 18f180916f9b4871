"""The ladder: every model family's rungs, ordered from fewest to most parameters."""

from __future__ import annotations

from bench.config import TaskType
from models import baseline, discriminant, gnn, linear, mlp, neighbors, svm, trees
from models.base import NotApplicable, ParameterCount, Rung, Shape, estimator_rung

FAMILY_MODULES = (baseline, linear, discriminant, neighbors, trees, svm, gnn, mlp)
# The shape used to order the ladder: a typical omics study.
TYPICAL_OMICS_SHAPE = Shape(task=TaskType.BINARY, n_features=10_000, n_classes=2, n_samples=100)

# Every family's counting rule, keyed by module name; reports repeat these texts in their legends.
COUNTING_RULES = {module.__name__.split(".")[-1]: module.COUNTING_RULE for module in FAMILY_MODULES}


def ladder() -> list[Rung]:
    """Return every rung, ordered by its estimated parameter count on a typical omics shape."""
    rungs = [rung for module in FAMILY_MODULES for rung in module.RUNGS]
    return sorted(rungs, key=lambda rung: rung.estimate(TYPICAL_OMICS_SHAPE))


def get_rungs(names: list[str] | None = None) -> list[Rung]:
    """Return the named rungs in ladder order, or all of them."""
    rungs = ladder()
    if not names:
        return rungs
    known = {rung.name for rung in rungs}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ValueError(f"unknown model(s) {unknown}; known models: {', '.join(rung.name for rung in rungs)}")
    return [rung for rung in rungs if rung.name in set(names)]


__all__ = ["NotApplicable", "ParameterCount", "Rung", "Shape", "estimator_rung", "ladder", "get_rungs", "COUNTING_RULES"]
