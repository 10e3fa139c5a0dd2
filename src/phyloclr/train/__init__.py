"""Pretraining: config, the loop, checkpoints and torch.distributed."""

from phyloclr.train.config import (
    ModelConfig,
    ObjectiveConfig,
    OptimConfig,
    PretrainConfig,
    RunConfig,
    ViewsConfig,
    load_pretrain_config,
)
from phyloclr.train.loop import PretrainResult, pretrain

__all__ = [
    "ModelConfig",
    "ObjectiveConfig",
    "OptimConfig",
    "PretrainConfig",
    "PretrainResult",
    "RunConfig",
    "ViewsConfig",
    "load_pretrain_config",
    "pretrain",
]
