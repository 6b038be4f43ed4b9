"""A workspace: the settings, the feature store and the registry that one run works on."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from retrain.config import Settings, load_config
from retrain.data import FeatureStore
from retrain.errors import ConfigError
from retrain.registry import Registry


@dataclass
class Workspace:
    settings: Settings
    store: FeatureStore
    registry: Registry

    @classmethod
    def open(cls, config: Settings | str | Path | None = None) -> "Workspace":
        settings = config if isinstance(config, Settings) else load_config(config)
        return cls(settings, FeatureStore(settings), Registry.from_settings(settings))

    def model_names(self, requested: list[str] | str | None = None) -> list[str]:
        """The requested model names (all configured ones by default), checked against config."""
        if requested is None or requested == []:
            return self.settings.model_names
        names = [requested] if isinstance(requested, str) else list(requested)
        unknown = [n for n in names if n not in self.settings.models]
        if unknown:
            raise ConfigError(f"unknown model {unknown[0]!r}; configured models: "
                              f"{', '.join(self.settings.model_names)}")
        return names
