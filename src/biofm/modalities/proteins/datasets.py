"""Real protein data that ships inside installed packages (nothing is downloaded).

Corpora (unlabeled, for pretraining), each a zero-argument callable → list[Record]:

- "proteome": the 2,100 predicted proteins of one bacterial genome
  (Prodigal calls on ENA PRJEB85 contig HG003687), from pyhmmer's test data
  (MIT / BSD licences);
- "pfam-hemopexin": 4,188 hemopexin-domain sequences (Pfam PF00045), from
  pyfamsa's test data (GPL-3.0-or-later);
- "pfam-ww": 4,025 WW-domain sequences (Pfam PF00397, RP15), from logomaker's
  example data (MIT).

The Pfam files are alignment exports: `-`/`.` are gap columns and lowercase
letters are residues in insert columns. The corpora hold the unaligned
sequences: gaps removed, uppercased, a final `*` stop dropped, empty rows dropped,
so every corpus has the same shape as a user's own FASTA file.

Tasks (labeled, binary peptide classification) from modlamp's data (BSD-3-Clause):
"amp" (antimicrobial peptides, APD3, vs UniProt peptides of length 10-50) and
"anticancer" (CancerPPD anticancer peptides vs scrambled AMP sequences).
Before splitting, identical sequences are merged (the AMP file lists 558
repeats) and sequences listed with both labels are dropped (22 in the AMP file),
so a sequence can never sit in two splits; then an 80/10/10 split stratified by
label is drawn from the seed.
"""

from __future__ import annotations

import csv
from dataclasses import replace
from functools import lru_cache, partial
from pathlib import Path

import numpy as np

from biofm.data.packaged import package_file
from biofm.data.records import Record
from biofm.data.splits import random_split
from biofm.data.tasks import Split, Splits, Task
from biofm.errors import BiofmError
from biofm.modalities.proteins.fasta import read_fasta
from biofm.registry import CORPORA, TASKS

FRACTIONS = (0.8, 0.1, 0.1)
SPLIT_DESCRIPTION = ("random 80/10/10 stratified by label, after merging identical "
                     "sequences and dropping those listed with both labels")
_GAPS = str.maketrans("", "", "-.")


def unaligned(records: list[Record]) -> list[Record]:
    """Alignment rows → plain sequences: drop gaps and a final '*', uppercase, drop empties."""
    out = []
    for rec in records:
        text = rec.data.translate(_GAPS).removesuffix("*").upper()
        if text:
            out.append(replace(rec, data=text))
    return out


def _packaged_fasta(package: str, relative: str) -> list[Record]:
    return unaligned(list(read_fasta(package_file(package, relative))))


@CORPORA.register("proteome")
def proteome() -> list[Record]:
    """~2,100 proteins of one bacterial genome: a small, realistic pretraining corpus."""
    return _packaged_fasta("pyhmmer", "tests/data/seqs/938293.PRJEB85.HG003687.faa")


@CORPORA.register("pfam-hemopexin")
def pfam_hemopexin() -> list[Record]:
    """Hemopexin-domain family: many homologues of one fold."""
    return _packaged_fasta("pyfamsa", "tests/data/hemopexin.faa")


@CORPORA.register("pfam-ww")
def pfam_ww() -> list[Record]:
    """WW-domain family (~40 residues each): short, fast to pretrain on."""
    return _packaged_fasta("logomaker", "examples/datafiles/ww_sequences.fa")


# -- labeled peptide tasks ------------------------------------------------------
@lru_cache(maxsize=None)
def _peptide_table(relative: str) -> tuple[tuple[str, ...], tuple[str, ...], tuple[int, ...]]:
    """(ids, sequences, labels) of a modlamp CSV, deduplicated.

    modlamp's CSVs start with a metadata row "n,features,name0,name1", then
    "sequence,label" rows. A sequence is kept once (id = its first CSV line);
    one that appears with both labels is ambiguous and dropped.
    """
    path: Path = package_file("modlamp", f"data/{relative}")
    labels_of: dict[str, set[int]] = {}
    first_line: dict[str, int] = {}
    with open(path, newline="") as fh:
        rows = csv.reader(fh)
        next(rows)  # metadata row
        for line, row in enumerate(rows, start=2):
            try:
                seq, label = row[0].strip().upper(), int(row[1])
            except (IndexError, ValueError) as exc:
                raise BiofmError(f"row is not 'sequence,label' ({exc})", path=path,
                                 record=line, fix="reinstall modlamp") from exc
            labels_of.setdefault(seq, set()).add(label)
            first_line.setdefault(seq, line)
    kept = [s for s, labs in labels_of.items() if len(labs) == 1]
    ids = tuple(f"{relative}:{first_line[s]}" for s in kept)
    return ids, tuple(kept), tuple(min(labels_of[s]) for s in kept)


def _peptide_splits(relative: str, seed: int) -> Splits:
    """Stratified 80/10/10 split of the deduplicated table, drawn from `seed`."""
    ids, texts, labels = _peptide_table(relative)
    whole = Split(list(ids), list(texts), np.asarray(labels, dtype=np.int64))
    parts = random_split(len(whole), FRACTIONS, seed=seed, stratify=whole.labels)
    return Splits(whole.subset(parts.train), whole.subset(parts.valid), whole.subset(parts.test))


@TASKS.register("amp")
def amp() -> Task:
    """Antimicrobial vs other peptides (binary); ~4,620 unique sequences."""
    relative = "AMPvsUniProt.csv"
    return Task(
        name="amp", modality="protein", kind="classification",
        load=partial(_peptide_splits, relative),
        split=SPLIT_DESCRIPTION,
        source=("modlamp 4.3.3 data/AMPvsUniProt.csv (BSD-3-Clause): 2,600 AMPs from APD3 "
                "(Jan 2016) vs 2,600 UniProt peptides of length 10-50; Müller et al., "
                "Bioinformatics 2017"),
        description="is the peptide antimicrobial (1) or a random UniProt peptide (0)?",
    )


@TASKS.register("anticancer")
def anticancer() -> Task:
    """Anticancer vs scrambled peptides (binary); 826 sequences."""
    relative = "ACP_CancPPD_vs_Random.csv"
    return Task(
        name="anticancer", modality="protein", kind="classification",
        load=partial(_peptide_splits, relative),
        split=SPLIT_DESCRIPTION,
        source=("modlamp 4.3.3 data/ACP_CancPPD_vs_Random.csv (BSD-3-Clause): 413 "
                "anticancer peptides from CancerPPD vs 413 scrambled AMP sequences"),
        description="is the peptide anticancer (1) or a scrambled sequence (0)?",
    )
