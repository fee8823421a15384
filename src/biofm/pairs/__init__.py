"""Pairs as a first-class input: two inputs of two modalities per example.

    data        Side, PairData (distinct items per side + pair index), PairTask, read_pairs
    splits      random, cold-<side> (scaffolds, similarity clusters), cold-both
    towers      Tower: a pretrained model on one side, windows for long inputs
    heads       PAIR_HEADS: concat-mlp, cross-attention
    model       PairConfig, PairModel (two towers + head), SideFeed
    train       pair_finetune through the one training core
    saving      a pair model as a self-describing directory
    baselines   GBT on each side's classical features, per-entity training means
    metrics     CI, MSE, Pearson, Spearman; per-target Spearman and EF10
    compare     pair_compare → ResultTable
    tasks       the packaged KIBA sample ("kiba"), a task from the user's CSV
    genes       DNA x protein: genes of packaged genomes and their proteins ("genes")
    coembed     contrastive co-embedding of two towers, retrieval recall@k both ways
    screen      rank a compound library against targets (repurposing: chembl-drugs)
    commands    the typed functions behind the CLI

Importing this package registers the pair tasks "kiba" and "genes" in `PAIR_TASKS`.
"""

from biofm.pairs import genes, tasks  # noqa: F401  (register "genes", "kiba")
from biofm.pairs.compare import pair_compare
from biofm.pairs.data import PAIR_TASKS, PairData, PairSplits, PairTask, Side, read_pairs
from biofm.pairs.heads import PAIR_HEADS
from biofm.pairs.model import PairConfig, PairModel
from biofm.pairs.saving import load_pair_model, save_pair_model
from biofm.pairs.screen import screen
from biofm.pairs.towers import Tower
from biofm.pairs.train import PairResult, pair_finetune

__all__ = ["PAIR_HEADS", "PAIR_TASKS", "PairConfig", "PairData", "PairModel", "PairResult",
           "PairSplits", "PairTask", "Side", "Tower", "load_pair_model", "pair_compare",
           "pair_finetune", "read_pairs", "save_pair_model", "screen"]
