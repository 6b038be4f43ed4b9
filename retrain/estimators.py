"""The model kinds: how each one builds, checks, fits, predicts with, stores and loads its
estimator.

Built-in kinds (``random_forest``, ``logistic_regression``, ``lightgbm``, ``xgboost``) get the
float matrix ``Preprocessing.transform`` makes: features in schema order, a categorical as its
code (unknown or missing: NaN). The ``sklearn`` kind gets a pandas DataFrame with the feature
names as columns: numeric features as float64, categoricals as pandas ``Categorical`` columns
whose categories are the training rows' (unknown or missing: NaN), so that a user's own
Pipeline can pick its columns by name and one-hot or bin them itself.

Storage never runs code on load: LightGBM's text format, XGBoost's UBJSON, scikit-learn
estimators through skops with an allow-list of types (scikit-learn's own, a few exact numpy
and standard-library names, and what ``[models.<m>] trusted_types`` adds); anything else is
refused when the model is saved, so it is never registered, and again when it is loaded.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from retrain.errors import ArtifactIntegrityError, ConfigError

# Types the built-in kinds need beyond skops' own default-trusted set (scikit-learn
# estimators, primitives). Exact names, never module prefixes: skops *calls* the named object
# when it rebuilds some nodes, so trusting "builtins." would trust ``builtins.exec`` and a
# prefix such as "numpy." would trust ``numpy.load``.
SKOPS_ALLOWED_TYPES = frozenset({
    "sklearn.tree._tree.Tree",  # the fitted trees of a random forest
    "numpy.dtype",
    "numpy.float64", "numpy.float32", "numpy.int64", "numpy.int32", "numpy.bool_",
    # HistGradientBoosting keeps ``partial(check_array, ...)``; the function it wraps must be
    # trusted on its own.
    "functools.partial",
})


@dataclass(frozen=True)
class EstimatorSource:
    """What a model section says about its estimator beyond kind and params: for the
    ``sklearn`` kind where the estimator comes from, and for every skops-stored kind the
    extra types its artifact may hold. ``where`` is the config key errors name."""

    where: str = "[models]"
    estimator: str | None = None  # "package.module.Class"
    factory: str | None = None  # "package.module:function", returns an unfitted estimator
    trusted_types: tuple[str, ...] = ()
    code_dir: Path | None = None  # importable while building and loading (the workspace)

    @classmethod
    def of(cls, settings, model_name: str) -> "EstimatorSource":
        cfg = settings.models[model_name]
        return cls(where=f"[models.{model_name}]", estimator=cfg.estimator, factory=cfg.factory,
                   trusted_types=tuple(cfg.trusted_types), code_dir=Path(settings.base_dir))

    def describe(self) -> dict[str, str]:
        return {k: v for k, v in (("estimator", self.estimator), ("factory", self.factory)) if v}


DEFAULT_SOURCE = EstimatorSource()


@dataclass(frozen=True)
class FitInput:
    """A training matrix with what kinds need to know about its columns."""

    X: np.ndarray
    y: np.ndarray  # as retrain.tasks.encode_target gives them
    categorical: tuple[int, ...]  # column positions of the categoricals
    frame: Callable[[np.ndarray], Any]  # X -> the DataFrame the sklearn kind takes
    task: str = "binary"
    classes: int = 2  # how many (multiclass: the codes 0..classes-1)


class Kind:
    """One model kind. Subclasses override what differs."""

    name = ""
    entry = "model.skops"  # the artifact's entry holding the estimator
    defaults: dict[str, Any] = {}

    def params(self, params: dict[str, Any]) -> dict[str, Any]:
        return {**self.defaults, **params}

    def check(self, params: dict[str, Any], seed: int, source: EstimatorSource,
              task: str = "binary") -> None:
        """Raise (TypeError, ValueError, ...) if ``params`` would not fit; trains nothing."""
        self.build(params, seed, source, task)._validate_params()

    def build(self, params: dict[str, Any], seed: int, source: EstimatorSource,
              task: str = "binary") -> Any:
        raise NotImplementedError

    def fit(self, data: FitInput, params: dict[str, Any], seed: int,
            source: EstimatorSource) -> Any:
        return self.build(params, seed, source, data.task).fit(data.X, data.y)

    def scores(self, estimator: Any, X: np.ndarray, frame: Callable, task: str) -> np.ndarray:
        """What ``retrain.stats.metrics`` calls scores: the positive class's probability, each
        class's probability, or the predicted value."""
        if task == "regression":
            return estimator.predict(X)
        proba = estimator.predict_proba(X)
        return proba[:, 1] if task == "binary" else proba

    def dump(self, estimator: Any, source: EstimatorSource) -> bytes:
        import skops.io as sio  # late: loads scikit-learn, which only these kinds need
        blob = sio.dumps(estimator)
        refused = refused_types(sio.get_untrusted_types(data=blob), source)
        if refused:
            raise ConfigError(_refusal(refused, source, "cannot store the model"))
        return blob

    def load(self, blob: bytes, source: EstimatorSource) -> Any:
        import skops.io as sio  # late: see dump
        with importable(source.code_dir):
            needed = sio.get_untrusted_types(data=blob)
            refused = refused_types(needed, source)
            if refused:
                raise ArtifactIntegrityError(_refusal(refused, source, "refusing to load"))
            return sio.loads(blob, trusted=needed)


def available_cores() -> int:
    """The cores this process may run on (its affinity, not the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


class RandomForest(Kind):
    name = "random_forest"
    # Trees are fitted on every core the process is given unless params say n_jobs (not
    # recorded with the version: the same config gives the same artifact on every machine).
    defaults = {"n_estimators": 200, "min_samples_leaf": 5}

    def build(self, params, seed, source, task="binary"):
        # Late: scikit-learn is heavy.
        from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
        forest = RandomForestRegressor if task == "regression" else RandomForestClassifier
        return forest(random_state=seed, **{"n_jobs": available_cores(), **params})

    def fit(self, data, params, seed, source):
        est = super().fit(data, params, seed, source)
        # Parallel predict_proba sums trees in completion order, which changes the last
        # bits; one thread keeps predictions bit-for-bit reproducible.
        est.set_params(n_jobs=1)
        return est


class Logistic(Kind):
    name = "logistic_regression"
    defaults = {"C": 1.0, "max_iter": 1000}

    def build(self, params, seed, source, task="binary"):
        if task == "regression":
            raise ConfigError(f"{source.where} kind: logistic_regression is a classifier; a "
                              "regression target takes lightgbm, xgboost, random_forest or "
                              "sklearn (e.g. estimator = \"sklearn.linear_model.Ridge\")")
        from sklearn.linear_model import LogisticRegression  # late: scikit-learn is heavy
        return LogisticRegression(random_state=seed, **params)

    def fit(self, data, params, seed, source):
        # Late: scikit-learn is heavy.
        from sklearn.compose import ColumnTransformer
        from sklearn.impute import SimpleImputer
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import OneHotEncoder, StandardScaler
        cat_idx = list(data.categorical)
        num_idx = [i for i in range(data.X.shape[1]) if i not in cat_idx]
        parts = [("num", Pipeline([("impute", SimpleImputer(strategy="median")),
                                   ("scale", StandardScaler())]), num_idx)]
        if cat_idx:
            parts.append(("cat", Pipeline([
                ("impute", SimpleImputer(strategy="constant", fill_value=-1.0)),
                ("onehot", OneHotEncoder(handle_unknown="ignore"))]), cat_idx))
        return Pipeline([("prep", ColumnTransformer(parts)),
                         ("model", self.build(params, seed, source, data.task))]).fit(data.X, data.y)


class LightGBM(Kind):
    name = "lightgbm"
    entry = "model.lgb.txt"
    defaults = {"n_estimators": 200, "learning_rate": 0.05, "num_leaves": 31,
                "min_child_samples": 20, "verbose": -1}

    _OBJECTIVES = {"binary": {"objective": "binary"},
                   "regression": {"objective": "regression"}}

    def _objective(self, task: str, classes: int) -> dict[str, Any]:
        if task == "multiclass":
            return {"objective": "multiclass", "num_class": classes}
        return self._OBJECTIVES[task]

    def check(self, params, seed, source, task="binary"):
        import lightgbm as lgb  # late: LightGBM is heavy
        options = dict(params)
        _rounds(options)
        rows, labels = _probe_rows(options)
        try:
            with native_stderr_silenced():  # LightGBM's "[Fatal]" line repeats the error
                lgb.train({"seed": seed, "verbose": -1, "num_threads": 1,
                           **self._objective(task, 2), **options},
                          lgb.Dataset(rows, label=labels, params={"verbose": -1}),
                          num_boost_round=1)
        except lgb.basic.LightGBMError as exc:
            raise ValueError(str(exc)) from None

    def fit(self, data, params, seed, source):
        import lightgbm as lgb  # late: LightGBM is heavy
        # Threads only pay off on large windows; on a busy machine OpenMP threads that
        # spin-wait for each other make small fits many times slower.
        threads = 1 if data.X.shape[0] < 50_000 else 2
        options = {**self._objective(data.task, data.classes), "seed": seed,
                   "deterministic": True, "force_row_wise": True, "num_threads": threads,
                   **params}
        rounds = _rounds(options)
        dataset = lgb.Dataset(data.X, label=data.y,
                              feature_name=[f"f{i}" for i in range(data.X.shape[1])],
                              categorical_feature=list(data.categorical) or "auto",
                              free_raw_data=True)
        return lgb.train(options, dataset, num_boost_round=rounds)

    def scores(self, estimator, X, frame, task):
        return estimator.predict(X)  # (n, classes) for a multiclass objective

    def dump(self, estimator, source):
        return estimator.model_to_string().encode()

    def load(self, blob, source):
        import lightgbm as lgb  # late: LightGBM is heavy
        return lgb.Booster(model_str=blob.decode())


class XGBoost(Kind):
    """XGBoost's own booster, categoricals as native categorical splits; stored as UBJSON."""

    name = "xgboost"
    entry = "model.ubj"
    defaults = {"n_estimators": 200, "learning_rate": 0.05, "max_depth": 6}
    # Names this kind takes besides those XGBoost's configuration lists.
    _OWN = frozenset({"n_estimators", "nthread", "seed", "verbosity", "objective"})

    # The objectives whose predictions are the scores retrain.stats.metrics takes.
    _OBJECTIVES = {"binary": ("binary:logistic",), "multiclass": ("multi:softprob",),
                   "regression": ("reg:squarederror", "reg:absoluteerror", "reg:pseudohubererror",
                                  "reg:squaredlogerror", "reg:tweedie", "reg:gamma",
                                  "count:poisson")}

    def _options(self, params, seed, threads, task="binary", classes=2):
        objective = {"objective": self._OBJECTIVES[task][0]}
        if task == "multiclass":
            objective["num_class"] = classes
        options = {**objective, "tree_method": "hist", "seed": seed, "nthread": threads,
                   "verbosity": 0, **params}
        if options["objective"] not in self._OBJECTIVES[task]:
            raise ValueError(f"objective {options['objective']!r} does not give the scores a "
                             f"{task} model is judged by; it takes "
                             f"{', '.join(self._OBJECTIVES[task])}")
        return options, _rounds(options)

    def check(self, params, seed, source, task="binary"):
        import xgboost as xgb  # late: XGBoost is heavy
        classes = 3 if task == "multiclass" else 2
        options, _ = self._options(params, seed, 1, task, classes)
        rows, labels = _probe_rows(options)
        if task == "multiclass":
            labels = np.arange(rows.shape[0]) % classes
        try:
            booster = xgb.train(options, xgb.DMatrix(rows, label=labels), num_boost_round=1)
        except xgb.core.XGBoostError as exc:
            raise ValueError(str(exc).strip().splitlines()[0]) from None
        known = set(_keys(json.loads(booster.save_config())))
        unknown = sorted(k for k in options if k not in known and k not in self._OWN)
        if unknown:
            raise ValueError(f"XGBoost has no parameter {unknown[0]!r}")

    def fit(self, data, params, seed, source):
        import xgboost as xgb  # late: XGBoost is heavy
        threads = 1 if data.X.shape[0] < 50_000 else 2
        options, rounds = self._options(params, seed, threads, data.task, data.classes)
        return xgb.train(options, self._matrix(xgb, data.X, data.categorical, data.y),
                         num_boost_round=rounds)

    @staticmethod
    def _matrix(xgb, X, categorical, y=None):
        types = ["c" if i in categorical else "q" for i in range(X.shape[1])]
        return xgb.DMatrix(X, label=y, feature_types=types, enable_categorical=True, nthread=1)

    def scores(self, estimator, X, frame, task):
        import xgboost as xgb  # late: XGBoost is heavy
        categorical = [i for i, t in enumerate(estimator.feature_types or []) if t == "c"]
        return estimator.predict(self._matrix(xgb, X, categorical))

    def dump(self, estimator, source):
        return bytes(estimator.save_raw("ubj"))

    def load(self, blob, source):
        import xgboost as xgb  # late: XGBoost is heavy
        booster = xgb.Booster()
        booster.load_model(bytearray(blob))
        return booster


class Sklearn(Kind):
    """Any scikit-learn-compatible classifier or Pipeline, named by import path
    (``estimator``) or built by the user's function (``factory``), stored with skops."""

    name = "sklearn"

    def build(self, params, seed, source, task="binary"):
        with importable(source.code_dir):
            if source.estimator:
                made = _import(source.estimator, f"{source.where} estimator")
                if not isinstance(made, type):
                    raise ConfigError(f"{source.where} estimator: {source.estimator!r} is not a "
                                      "class (use factory = \"module:function\" for a function)")
                estimator = made(**params)
            elif source.factory:
                build = _import(source.factory, f"{source.where} factory")
                if not callable(build):
                    raise ConfigError(f"{source.where} factory: {source.factory!r} is not callable")
                estimator = build(**params)
            else:
                raise ConfigError(f"{source.where}: kind \"sklearn\" needs estimator = "
                                  "\"package.module.Class\" or factory = \"package.module:function\"")
        predicts = "predict" if task == "regression" else "predict_proba"
        for method in ("fit", predicts, "get_params", "set_params"):
            if not callable(getattr(estimator, method, None)):
                raise ConfigError(f"{source.where}: {type(estimator).__name__} has no "
                                  f"{method}(); a scikit-learn "
                                  f"{'regressor' if task == 'regression' else 'classifier'} "
                                  "is expected")
        # Deterministic given the seed: every random_state the estimator (or a step of its
        # Pipeline) leaves unset takes the model's seed.
        unset = {key: seed for key, value in estimator.get_params(deep=True).items()
                 if key.split("__")[-1] == "random_state" and value is None}
        return estimator.set_params(**unset) if unset else estimator

    def check(self, params, seed, source, task="binary"):
        estimator = self.build(params, seed, source, task)
        validate = getattr(estimator, "_validate_params", None)
        if callable(validate):
            validate()

    def fit(self, data, params, seed, source):
        return self.build(params, seed, source, data.task).fit(data.frame(data.X), data.y)

    def scores(self, estimator, X, frame, task):
        if task == "regression":
            return estimator.predict(frame(X))
        proba = estimator.predict_proba(frame(X))
        classes = list(getattr(estimator, "classes_", range(proba.shape[1])))
        if task == "binary":
            return proba[:, classes.index(1)]
        return proba[:, np.argsort(classes)]  # columns in code order


KINDS: dict[str, Kind] = {k.name: k for k in (RandomForest(), LightGBM(), Logistic(), XGBoost(),
                                                Sklearn())}


def kind_of(name: str) -> Kind:
    try:
        return KINDS[name]
    except KeyError:
        raise ConfigError(f"unknown model kind {name!r}; expected one of "
                          f"{', '.join(KINDS)}") from None


# Trusted types ------------------------------------------------------------------------------

def refused_types(names: list[str], source: EstimatorSource) -> list[str]:
    """The names of ``names`` that are neither allowed, nor listed by the model section, nor
    scikit-learn's own."""
    listed = set(source.trusted_types)
    with importable(source.code_dir):
        return [t for t in names
                if t not in SKOPS_ALLOWED_TYPES and t not in listed and not _sklearn_own(t)]


def _sklearn_own(name: str) -> bool:
    """``name`` is a class or function defined in scikit-learn itself (not something a
    scikit-learn module merely imports, like ``sklearn.utils.fixes.np``)."""
    if not name.startswith("sklearn."):
        return False
    module_name, _, attr = name.rpartition(".")
    try:
        obj = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError):
        return False
    return (inspect.isclass(obj) or inspect.isfunction(obj)) and \
        getattr(obj, "__module__", "").split(".")[0] == "sklearn"


def _refusal(refused: list[str], source: EstimatorSource, doing: str) -> str:
    return (f"{doing}: its skops file holds {', '.join(repr(t) for t in refused)}, which "
            f"{'is' if len(refused) == 1 else 'are'} not trusted; if {'it is' if len(refused) == 1 else 'they are'} "
            f"yours and safe to load, add {'it' if len(refused) == 1 else 'them'} to "
            f"{source.where} trusted_types")


# Helpers -----------------------------------------------------------------------------------

@contextmanager
def importable(folder: Path | None) -> Iterator[None]:
    """``folder`` on ``sys.path`` for the duration (the workspace, for a user's module)."""
    path = str(folder) if folder is not None else None
    if path is None or path in sys.path:
        yield
        return
    sys.path.insert(0, path)
    try:
        yield
    finally:
        try:
            sys.path.remove(path)
        except ValueError:
            pass


def _import(path: str, where: str) -> Any:
    """``package.module.Name`` or ``package.module:name``."""
    module_name, sep, attr = path.partition(":")
    if not sep:
        module_name, _, attr = path.rpartition(".")
    if not module_name or not attr:
        raise ConfigError(f"{where}: {path!r} is not an import path (package.module.Name)")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"{where}: cannot import {module_name!r} ({exc})") from None
    try:
        obj = module
        for part in attr.split("."):
            obj = getattr(obj, part)
    except AttributeError:
        raise ConfigError(f"{where}: module {module_name!r} has no {attr!r}") from None
    return obj


def _rounds(options: dict[str, Any]) -> int:
    """Take ``n_estimators`` (the boosting rounds) out of a booster's options."""
    rounds = options.pop("n_estimators", 100)
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise ValueError(f"n_estimators must be at least 1, got {rounds!r}")
    return rounds


def _keys(config: Any) -> Iterator[str]:
    if isinstance(config, dict):
        for key, value in config.items():
            yield key
            yield from _keys(value)
    elif isinstance(config, list):
        for value in config:
            yield from _keys(value)


def _probe_rows(options: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """A few rows for checking parameters. Per-feature parameters (monotone_constraints,
    feature_contri, ...) need as many columns as they list; the feature count is known only
    when data is read."""
    width = max([len(v) for v in options.values() if isinstance(v, (list, tuple))], default=1)
    column = np.tile(np.arange(4.0), (len(options) + 8, 1)).T.reshape(-1, 1)
    rows = np.repeat(column, width, axis=1)
    return rows, (np.arange(rows.shape[0]) % 2).astype(float)


@contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """File descriptor 2 to /dev/null for the few milliseconds of a check: native code writes
    there directly, past Python's logging."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
