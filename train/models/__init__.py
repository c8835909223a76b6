"""The model zoo of `wbc-train` (see registry.py)."""

from wbc_edge.train.models.registry import (
    MODELS,
    BuiltModel,
    ModelError,
    ModelInfo,
    build_model,
    get_model_info,
    preflight,
)
from wbc_edge.train.models.weights import WeightsChoice, WeightsUnavailable, parse_weights

__all__ = [
    "MODELS",
    "BuiltModel",
    "ModelError",
    "ModelInfo",
    "WeightsChoice",
    "WeightsUnavailable",
    "build_model",
    "get_model_info",
    "parse_weights",
    "preflight",
]
