"""DNA x protein pairs: Prodigal gene calls on packaged genomes, the by-genome split,
retrieval baselines and `biofm pair-pretrain --task genes` end to end."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
import torch

from biofm.data.packaged import package_file
from biofm.modalities.dna.reader import read_dna
from biofm.pairs import genes
from biofm.pairs.coembed import both_ways, positives, random_recall
from biofm.pairs.data import PAIR_TASKS

DATA = "tests/data"


def _calls(name: str, label: str) -> list[genes.GeneCall]:
    path = package_file("pyrodigal", f"{DATA}/{name}")
    return genes.call_genes({r.id: r.data for r in read_dna(path)}, label)


def _fasta(path: Path) -> dict[str, str]:
    records, name = {}, None
    for line in gzip.open(path, "rt"):
        if line.startswith(">"):
            name = line[1:].strip()
            records[name] = ""
        else:
            records[name] += line.strip()
    return records


@pytest.fixture(scope="module")
def small_genomes():
    """Three real sequences of two species, called like the packaged genomes."""
    return {"ecoli-k12": _calls("SRR492066.fna.gz", "ecoli-k12"),
            "ecoli-contig": _calls("KK037166.fna.gz", "ecoli-contig"),
            "c-diphtheriae": _calls("GCF_001457455.1_NCTC11397_genomic_100kb.fna.gz",
                                    "c-diphtheriae")}


def test_gene_calls_match_prodigals_own_output():
    """The E. coli contig (870 kbp, single-genome training) against the gene and protein
    files pyrodigal ships for it: every complete gene, with its translation."""
    calls = _calls("MIIJ01000039.fna.gz", "contig")
    proteins = _fasta(package_file("pyrodigal", f"{DATA}/MIIJ01000039.single.faa.gz"))
    dna = _fasta(package_file("pyrodigal", f"{DATA}/MIIJ01000039.single.fna.gz"))
    complete = [h for h in proteins if "partial=00" in h]
    assert len(calls) == len(complete) > 300
    assert [c.protein for c in calls] == [proteins[h].rstrip("*") for h in complete]
    assert [c.dna for c in calls] == [dna[h] for h in complete]
    assert all(c.dna[:3] in ("ATG", "GTG", "TTG") and c.protein[0] == "M" for c in calls)


def test_by_genome_split_keeps_each_genome_on_one_side(small_genomes, monkeypatch):
    monkeypatch.setattr(genes, "genome_genes", small_genomes.__getitem__)
    task = PAIR_TASKS.get("genes")()
    assert task.kind == "retrieval" and task.positive_at == 1.0 and "pyrodigal" in task.source
    splits = task.load("by-genome", 0)
    for part, name in zip((splits.train, splits.valid, splits.test), genes.BY_GENOME):
        assert {c.protein for c in small_genomes[name]} == set(part.inputs(1))
        assert (part.labels == 1.0).all()
    train_genes, test_genes = set(splits.train.inputs(0)), set(splits.test.inputs(0))
    assert not train_genes & test_genes
    assert "test: c-diphtheriae" in " ".join(splits.notes)
    random = task.load("random", 0)
    assert sum(len(p) for p in (random.train, random.valid, random.test)) == len(
        genes.gene_pairs([c for n in genes.BY_GENOME for c in small_genomes[n]]))


def test_random_recall_both_ways_on_known_sizes(small_genomes, monkeypatch):
    monkeypatch.setattr(genes, "genome_genes", small_genomes.__getitem__)
    test = PAIR_TASKS.get("genes")().load("by-genome", 0).test
    _, _, mask = positives(test, 1.0)
    got = random_recall(test, 1.0)
    # recall@1 of a random order: a query with p positives among n candidates hits with p / n
    per_gene = mask.sum(1).numpy() / mask.shape[1]
    per_protein = mask.sum(0).numpy() / mask.shape[0]
    assert got["recall@1"] == pytest.approx(per_gene.mean())
    assert got["reverse recall@1"] == pytest.approx(per_protein.mean())
    assert got["recall@10"] > got["recall@1"]


def test_both_ways_scores_each_direction():
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.1]])  # 3 genes
    b = torch.tensor([[1.0, 0.0], [0.0, 1.0]])  # 2 proteins
    mask = torch.tensor([[True, False], [False, True], [False, True]])
    got = both_ways(a, b, mask, ks=(1,))
    assert got["recall@1"] == pytest.approx(2 / 3)  # gene 2 points at protein 0
    # protein 0's nearest gene is gene 0 (its own); protein 1's nearest is gene 1 (its own)
    assert got["reverse recall@1"] == pytest.approx(1.0)


def test_codon_baseline_learns_the_genetic_code(small_genomes, monkeypatch):
    monkeypatch.setattr(genes, "genome_genes", small_genomes.__getitem__)
    splits = PAIR_TASKS.get("genes")().load("by-genome", 0)
    got = genes.codon_baseline(splits, 1.0)
    chance = random_recall(splits.test, 1.0)
    assert got["recall@1"] > 10 * chance["recall@1"]
    assert got["reverse recall@1"] > 10 * chance["reverse recall@1"]
    # the learned map is the genetic code: GCx -> A (alanine)
    x = genes.codon_profile(["GCTGCCGCAGCG"])
    assert x[0, genes.CODONS.index("GCT")] == pytest.approx(0.25)
    assert genes.amino_composition(["AAAC"])[0, :2].tolist() == pytest.approx([0.75, 0.25])


def test_pair_pretrain_on_genes_prints_retrieval_both_ways(cli, small_genomes, monkeypatch,
                                                            protein_mlm_run, tmp_path):
    from biofm.cli import main

    monkeypatch.setattr(genes, "genome_genes", small_genomes.__getitem__)
    (tmp_path / "dna.yaml").write_text(
        "data: {modality: dna, input: ecoli-k12, tokenizer: dna-char, max_records: 100}\n"
        "backbone: {kind: encoder, size: tiny, max_len: 64}\n"
        "objective: {name: mlm}\ntrain: {max_steps: 2, batch_size: 8, warmup_steps: 1}\n")
    main(["pretrain", "--config", str(tmp_path / "dna.yaml"), "--output", str(tmp_path / "dna"),
          "--no-progress"])
    # the protein model first: towers go to the side of their modality
    run = cli("pair-pretrain", "--model", protein_mlm_run / "final", "--model",
              tmp_path / "dna" / "final", "--task", "genes", "--epochs", "1",
              "--max-tokens", "120", "--max-train", "40", "--device", "cpu",
              "--output", tmp_path / "co")
    assert run.code == 0, run.err
    text = " ".join(run.out.split())
    for phrase in ("co-embedding", "random", "codon profile", "reverse", "recall@10",
                   "each gene ranks the proteins"):
        assert phrase in text, phrase
    assert "test: c-diphtheriae" in run.err
    assert (tmp_path / "co" / "tower_a").is_dir()
    run = cli("pair-finetune", "--model", tmp_path / "dna" / "final", "--model",
              protein_mlm_run / "final", "--task", "genes", "--output", tmp_path / "ft")
    assert run.code == 2 and "has no value to predict" in " ".join(run.err.split())
