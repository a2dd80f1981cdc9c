"""Content appeal: PP-Rec's content-based popularity (Qi et al., ACL 2021, arXiv 2106.01300, section 3.2) as one
scalar per news item predicted from the news encoder's output, so that a story never shown has one too.

PP-Rec predicts popularity from the news representation with a dense layer; here the same form, a linear map of
the news vector, is fitted as a binomial logistic regression of each news item's clicks among its impressions
(scikit-learn, L2): the appeal is the predicted click log-odds minus their mean. Trained on the impressions
the caller gives (a training split, or the part of a stream before the time it is used: causal), served as the
`appeal` attribute of the news documents (schemas/news.sd).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class AppealConfig:
    l2: float = 1.0  # inverse regularisation strength C of scikit-learn's LogisticRegression
    min_impressions: int = 1  # news shown fewer times are left out of the fit


@dataclass(frozen=True, eq=False)
class AppealModel:
    weights: np.ndarray  # (D,)
    bias: float
    center: float  # mean predicted log-odds over the fitted news: subtracted, so appeal 0 = an average story
    fitted_news: int

    def predict(self, vectors: np.ndarray) -> np.ndarray:
        """(N, D) news vectors -> (N,) appeal (float64)."""
        return np.asarray(vectors, dtype=np.float64) @ self.weights + self.bias - self.center

    def to_dict(self) -> dict:
        return {"weights": self.weights.tolist(), "bias": self.bias, "center": self.center,
                "fitted_news": self.fitted_news}

    @classmethod
    def from_dict(cls, values: dict) -> "AppealModel":
        return cls(np.asarray(values["weights"], dtype=np.float64), float(values["bias"]), float(values["center"]),
                   int(values["fitted_news"]))


def fit_appeal(vectors: np.ndarray, clicks: np.ndarray, impressions: np.ndarray,
               config: AppealConfig = AppealConfig()) -> AppealModel:
    """Fit on per-news counts: each news item is two weighted rows, (vector, clicked) with weight clicks and
    (vector, not clicked) with weight impressions - clicks: the binomial likelihood of its counts."""
    from sklearn.linear_model import LogisticRegression

    shown = np.flatnonzero(np.asarray(impressions) >= config.min_impressions)
    if len(shown) == 0 or clicks[shown].sum() == 0 or clicks[shown].sum() == impressions[shown].sum():
        return AppealModel(np.zeros(vectors.shape[1]), 0.0, 0.0, 0)
    x = np.asarray(vectors, dtype=np.float64)[shown]
    features = np.concatenate([x, x])
    labels = np.concatenate([np.ones(len(shown)), np.zeros(len(shown))])
    weight = np.concatenate([clicks[shown], impressions[shown] - clicks[shown]]).astype(np.float64)
    keep = weight > 0
    model = LogisticRegression(C=config.l2, max_iter=1000)
    model.fit(features[keep], labels[keep], sample_weight=weight[keep])
    weights, bias = model.coef_[0].astype(np.float64), float(model.intercept_[0])
    center = float((x @ weights + bias).mean())
    return AppealModel(weights, bias, center, len(shown))
