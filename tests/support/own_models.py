"""The team's own code a `sklearn` factory model is built from: a Pipeline with a step of the
team's own type (which the model section must trust), as a module text to write into a
workspace folder."""

TEAM_MODULE = '''
import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import make_column_transformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler


class Log1p(BaseEstimator, TransformerMixin):
    def fit(self, X, y=None):
        self.n_features_in_ = np.asarray(X).shape[1]
        return self

    def transform(self, X):
        return np.log1p(np.clip(np.asarray(X, dtype=float), 0, None))


def build(C=1.0):
    return make_pipeline(
        make_column_transformer(
            (make_pipeline(SimpleImputer(strategy="median"), Log1p(), StandardScaler()),
             ["income", "loan_amount"]),
            (make_pipeline(SimpleImputer(strategy="median"), StandardScaler()),
             ["credit_score", "debt_to_income", "months_employed", "age"]),
            (OneHotEncoder(handle_unknown="ignore"), ["home_ownership", "purpose"])),
        LogisticRegression(C=C, max_iter=1000))
'''
