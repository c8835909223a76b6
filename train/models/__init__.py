"""The model zoo of `wbc-train` (see registry.py)."""

from train.models.registry import (
    MODELS,
    BuiltModel,
    ModelError,
    ModelInfo,
    build_model,
    get_model_info,
    preflight,
)
from train.models.weights import WeightsChoice, WeightsUnavailable, parse_weights

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
