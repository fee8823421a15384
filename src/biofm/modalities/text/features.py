"""TF-IDF features: the classical text baseline (with logistic regression)."""

from __future__ import annotations

import numpy as np
from scipy import sparse

from biofm.bench.baselines import Features
from biofm.data.tasks import Splits

MAX_FEATURES = 20_000


def tfidf_features(splits: Splits, seed: int) -> Features:
    """Word uni- and bigram TF-IDF (sublinear tf, l2 per document), vocabulary and idf
    fitted on the training split only; terms in fewer than 2 training documents are
    dropped, at most the `MAX_FEATURES` most frequent kept. Sparse (N, F) float32."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer(lowercase=True, ngram_range=(1, 2),
                                 min_df=2 if len(splits.train) > 20 else 1,
                                 max_features=MAX_FEATURES, sublinear_tf=True, dtype=np.float32)
    train = vectorizer.fit_transform(splits.train.inputs)
    valid, test = (vectorizer.transform(part.inputs) for part in (splits.valid, splits.test))
    return sparse.csr_matrix(train), sparse.csr_matrix(valid), sparse.csr_matrix(test)


__all__ = ["MAX_FEATURES", "tfidf_features"]
