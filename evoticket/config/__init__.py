"""Configuration: the frozen dataclasses (:mod:`.schema`), how they are read (:mod:`.overrides`) and how
every key is described from them (:mod:`.describe`, printed by ``evoticket config``).

This stage imports nothing downstream; :func:`evoticket.methods.resolve` runs the checks that need
a data set, a model or a registry.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from evoticket.config.describe import ConfigKey, describe_keys, field_docstrings, format_keys, format_toml
from evoticket.config.overrides import parse_value, read_toml
from evoticket.config.schema import (
    MOVED,
    SECTIONS,
    TOP_LEVEL,
    BudgetConfig,
    CampaignConfig,
    CampaignSection,
    DataConfig,
    EdgePopupConfig,
    FinetuneConfig,
    GAConfig,
    GMPConfig,
    IMPConfig,
    ModelConfig,
    OptimizerConfig,
    RigLConfig,
    RigLTunedConfig,
    TicketConfig,
    TrainConfig,
    all_sections,
    migrate,
    register_section,
    unregister_section,
)


def load_config(path: str | os.PathLike | None = None, overrides: Sequence[str] = ()) -> CampaignConfig:
    """Read a TOML configuration file and apply ``section.key=value`` overrides.

    Args:
        path: TOML file; ``None`` gives the default campaign.
        overrides: ``--set`` strings applied after the file.

    Raises:
        ConfigError: if the file is missing, is not valid TOML, or holds a bad key or value.
    """
    config = CampaignConfig() if path is None else CampaignConfig.from_dict(read_toml(path))
    return config.with_overrides(overrides) if overrides else config


__all__ = [
    "MOVED",
    "SECTIONS",
    "TOP_LEVEL",
    "BudgetConfig",
    "CampaignConfig",
    "CampaignSection",
    "ConfigKey",
    "DataConfig",
    "EdgePopupConfig",
    "FinetuneConfig",
    "GAConfig",
    "GMPConfig",
    "IMPConfig",
    "ModelConfig",
    "OptimizerConfig",
    "RigLConfig",
    "RigLTunedConfig",
    "TicketConfig",
    "TrainConfig",
    "all_sections",
    "describe_keys",
    "field_docstrings",
    "format_keys",
    "format_toml",
    "load_config",
    "migrate",
    "parse_value",
    "register_section",
    "unregister_section",
]
