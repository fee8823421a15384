"""Treatment effects: TransTEE on the shared transformer, classical estimators,
and the ACIC 2016 / NHEFS data that ships with causallib (see docs/effects.md)."""

from biofm.causal.data import EffectData, load_acic2016, load_nhefs, read_effect_csv
from biofm.causal.estimators import (
                                     IPW,
                                     Effects,
                                     SLearner,
                                     Standardisation,
                                     TLearner,
                                     XLearner,
                                     bootstrap_intervals,
                                     ipw_ate,
)
from biofm.causal.metrics import ate_error, covers, pehe
from biofm.causal.run import METHODS, effects_note, run_effects
from biofm.causal.transtee import (
                                     CovariateTokenizer,
                                     TransTEE,
                                     TransTEEConfig,
                                     TransTEEEstimator,
)

__all__ = ["IPW", "METHODS", "CovariateTokenizer", "EffectData", "Effects", "SLearner",
           "Standardisation", "TLearner", "TransTEE", "TransTEEConfig", "TransTEEEstimator",
           "XLearner", "ate_error", "bootstrap_intervals", "covers", "effects_note", "ipw_ate",
           "load_acic2016", "load_nhefs", "pehe", "read_effect_csv", "run_effects"]
