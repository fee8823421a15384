"""`biofm prepare` throughput: residues per second with 1 and 2 tokenising workers.

Writes a FASTA file of `--sequences` protein-like sequences (UniRef50-like
lengths), then prepares it as `biofm prepare` does: records streamed from the
file by the protein modality's reader, a seeded train/valid split, the ESM-2
tokenizer, sharded token files (`biofm.data.shards.prepare_corpus`), once per
worker count, interleaved over `--repeats`. The outputs of every worker count
are compared byte for byte.

    python benchmarks/prepare_throughput.py [--sequences 20000] [--workers 1 2]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import torch

import common
from biofm.commands import iter_records
from biofm.config import DataConfig
from biofm.data.shards import prepare_corpus
from biofm.modalities.proteins import EsmTokenizer


def same_files(a: Path, b: Path) -> bool:
    names = sorted(p.name for p in a.iterdir())
    return names == sorted(p.name for p in b.iterdir()) and all(
        (a / n).read_bytes() == (b / n).read_bytes() for n in names)


def measure(args: argparse.Namespace, device: torch.device) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="biofm-prepare-bench-"))
    try:
        texts = common.protein_texts(args.sequences, seed=args.seed)
        fasta = tmp / "proteins.fasta"
        fasta.write_text("".join(f">seq{i}\n{t}\n" for i, t in enumerate(texts)))
        data = DataConfig.from_dict({"modality": "protein", "input": str(fasta),
                                     "valid_fraction": 0.05})

        def run(workers: int) -> None:
            prepare_corpus(iter_records(data), EsmTokenizer(), tmp / f"out{workers}",
                           max_len=1026, valid_fraction=0.05, seed=0, workers=workers)

        variants = {f"workers_{w}": (lambda i, w=w: run(w)) for w in args.workers}
        for w in args.workers:  # warm-up: the pool's server process starts once
            run(w)
        timings = common.interleaved(variants, 1, args.repeats, device)
        first = tmp / f"out{args.workers[0]}"
        identical = all(same_files(first, tmp / f"out{w}") for w in args.workers[1:])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    residues = sum(map(len, texts))
    rates = {n: common.quartiles([residues / s for s in timings.seconds[n]]) for n in variants}
    base = f"workers_{args.workers[0]}"
    return {
        "residues_per_s": {n: q["median"] for n, q in rates.items()},
        "residues_per_s_iqr": {n: [q["q1"], q["q3"]] for n, q in rates.items()},
        "speedup_vs_1_worker": {n: timings.speedup(n, base) for n in variants},
        "identical_output": identical,
        "residues": residues,
        "sequences": len(texts),
    }


def report(figures: dict, args: argparse.Namespace) -> None:
    print(f"biofm prepare of {figures['sequences']:,} protein sequences "
          f"({figures['residues']:,} residues), {args.repeats} interleaved repeats")
    load = figures["load_average"]
    print(f"machine: {figures['machine']}; load average {load['before']:.1f} before, "
          f"{load['after']:.1f} after")
    for n, rate in figures["residues_per_s"].items():
        q = {"median": rate, "q1": figures["residues_per_s_iqr"][n][0],
             "q3": figures["residues_per_s_iqr"][n][1]}
        speed = common.iqr(figures["speedup_vs_1_worker"][n], "{:.2f}")
        print(f"{n:10} {common.iqr(q)} residues/s   ({speed}x)")
    print(f"identical files for every worker count: {figures['identical_output']}")


def main(argv: list[str] | None = None) -> dict | None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sequences", type=int, default=20_000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    common.add_common_arguments(parser, precision=False)
    parser.set_defaults(probe=None)
    args = parser.parse_args(argv)
    return common.run_main(args, measure, report, probe=None)


if __name__ == "__main__":
    main()
