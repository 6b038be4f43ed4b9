"""A workspace: the settings, the feature stores and the registry that one run works on."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from retrain.config import DEFAULT_DATASET, Settings, load_config
from retrain.data import FeatureStore
from retrain.errors import ConfigError
from retrain.registry import Registry
from retrain.storage import ReportStore


@dataclass
class Workspace:
    """``store`` reads the ``[data]`` dataset (None without one); ``for_dataset`` and
    ``for_model`` give the workspace as one dataset sees it: the same registry, that
    dataset's settings as ``[data]`` and its store, made once, so that one run reads each
    dataset's files once."""

    settings: Settings
    store: FeatureStore | None
    registry: Registry
    _views: dict[str, "Workspace"] = field(default_factory=dict, repr=False, compare=False)
    _dataset: str = field(default=DEFAULT_DATASET, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._views.setdefault(self._dataset, self)

    @classmethod
    def open(cls, config: Settings | str | Path | None = None) -> "Workspace":
        settings = config if isinstance(config, Settings) else load_config(config)
        store = FeatureStore(settings) if settings.data is not None else None
        return cls(settings, store, Registry.from_settings(settings))

    @cached_property
    def reports(self) -> ReportStore:
        """The reports folder (``[drift] reports_dir``, local or on object storage)."""
        if self._dataset != DEFAULT_DATASET:
            return self._views[DEFAULT_DATASET].reports
        return ReportStore.from_settings(self.settings)

    @property
    def dataset(self) -> str:
        """The dataset this workspace's ``store`` and ``settings.data`` are."""
        return self._dataset

    def for_dataset(self, name: str) -> "Workspace":
        if name == DEFAULT_DATASET:
            root = self._views[DEFAULT_DATASET]
            if root.store is None:
                raise ConfigError("there is no [data] section")
            return root
        if name not in self._views:
            if name not in self.settings.datasets:
                raise ConfigError(f"unknown dataset {name!r}; datasets: "
                                  f"{', '.join(self.settings.datasets)}")
            root = self._views[DEFAULT_DATASET].settings
            settings = root.for_dataset(name)
            Workspace(settings, FeatureStore(settings), self.registry, self._views, name)
        return self._views[name]

    def for_model(self, model_name: str) -> "Workspace":
        return self.for_dataset(self.settings.dataset_of(model_name))

    def datasets_of(self, models: list[str]) -> dict[str, list[str]]:
        """The models by dataset, in the order of ``Settings.dataset_names``."""
        out: dict[str, list[str]] = {}
        for name in self.settings.dataset_names:
            used = [m for m in models if self.settings.dataset_of(m) == name]
            if used:
                out[name] = used
        return out

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
