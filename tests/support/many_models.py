"""A demo workspace with many models (random forests, LightGBM and logistic regressions with
different seeds and sizes) and an ``[orchestration]`` section, for the tests of training
several models at once."""

from __future__ import annotations

import textwrap
from pathlib import Path

from retrain.demo import write_workspace

KINDS = ("random_forest", "lightgbm", "logistic_regression")

# A scikit-learn classifier that refuses to learn: a model's own failure, inside its fit.
REFUSING_MODULE = '''
class Refuses:
    def __init__(self, C=1.0):
        self.C = C

    def get_params(self, deep=True):
        return {"C": self.C}

    def set_params(self, **params):
        self.C = params.get("C", self.C)
        return self

    def fit(self, X, y):
        raise ValueError("this estimator refuses to learn")

    def predict_proba(self, X):
        raise ValueError("never fitted")


def build(C=1.0):
    return Refuses(C)
'''


def model_sections(count: int, trees: int = 20) -> dict[str, str]:
    """``count`` model sections by name, cycling through ``KINDS`` with their own seeds."""
    out = {}
    for i in range(count):
        kind = KINDS[i % len(KINDS)]
        name = f"{kind}_{i:02d}"
        params = {"random_forest": f"{{ n_estimators = {trees}, min_samples_leaf = {5 + i} }}",
                  "lightgbm": f"{{ n_estimators = {trees}, num_leaves = {7 + i} }}",
                  "logistic_regression": f"{{ C = {0.5 + i / 10} }}"}[kind]
        out[name] = f'[models.{name}]\nkind = "{kind}"\nseed = {100 + i}\nparams = {params}\n'
    return out


def many_models_workspace(directory: Path, count: int, orchestration: str = "",
                          refusing: bool = False, **demo) -> Path:
    """A demo workspace in ``directory`` whose models are ``model_sections(count)`` (and a
    ``refuses`` model whose fit raises, with ``refusing``), with ``orchestration`` (TOML
    lines) as its ``[orchestration]`` section; returns its retrain.toml."""
    config = write_workspace(directory, **{"months": 4, "rows_per_month": 600, **demo})
    sections = "\n".join(model_sections(count).values())
    if refusing:
        (directory / "refusing_models.py").write_text(textwrap.dedent(REFUSING_MODULE))
        sections += '\n[models.refuses]\nkind = "sklearn"\nfactory = "refusing_models:build"\n'
    text = config.read_text()
    text = (text[:text.index("[models.random_forest]")] + sections + "\n"
            + text[text.index("[triggers]"):])
    if orchestration:
        text += f"\n[orchestration]\n{textwrap.dedent(orchestration).strip()}\n"
    config.write_text(text)
    return config


def model_names(count: int, refusing: bool = False) -> list[str]:
    return list(model_sections(count)) + (["refuses"] if refusing else [])
