"""Build the Bambara demo corpus (espeak-ng, needs ``pip install 'rlnf[demo]'``) and optionally scorer data.

python recipes/build_demo_corpus.py                              # into $RLNF_CACHE or ~/.cache/rlnf
python recipes/build_demo_corpus.py --output-dir data/demo --scorer-data data/scorer --label-noise 5
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from rlnf.data import build_demo_corpus, load_demo_corpus, make_scorer_dataset


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output-dir", type=Path, default=None, help="corpus folder (default: the rlnf cache)")
    parser.add_argument("--voices-per-sentence", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-sentences", type=int, default=None, help="keep only this many sentences")
    parser.add_argument("--overwrite", action="store_true", help="rebuild even if a corpus is there")
    parser.add_argument("--scorer-data", type=Path, default=None, help="also save scorer rows here (save_to_disk)")
    parser.add_argument("--hypotheses-per-clip", type=int, default=6)
    parser.add_argument("--mismatch-fraction", type=float, default=0.15)
    parser.add_argument("--label-noise", type=float, default=0.0, help="std of Gaussian noise on scores (points)")
    return parser.parse_args(argv)


def folder_megabytes(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 1e6


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    start = time.perf_counter()
    corpus = build_demo_corpus(
        args.output_dir, voices_per_sentence=args.voices_per_sentence, seed=args.seed,
        overwrite=args.overwrite, max_sentences=args.max_sentences,
    )  # fmt: skip
    splits = load_demo_corpus(cache_dir=corpus)
    counts = ", ".join(f"{name} {len(ds)}" for name, ds in splits.items())
    print(f"corpus: {corpus} ({counts} clips, {folder_megabytes(corpus):.1f} MB, {time.perf_counter() - start:.1f} s)")
    if args.scorer_data is None:
        return
    # Embed the audio bytes so the saved rows do not depend on the cache folder.
    splits = load_demo_corpus(cache_dir=corpus, embed_audio=True)
    for name, ds in splits.items():
        rows = make_scorer_dataset(
            ds, hypotheses_per_clip=args.hypotheses_per_clip, mismatch_fraction=args.mismatch_fraction,
            label_noise=args.label_noise, seed=args.seed,
        )  # fmt: skip
        rows.save_to_disk(str(args.scorer_data / name))
        print(f"scorer data: {args.scorer_data / name} ({len(rows)} rows)")


if __name__ == "__main__":
    from rlnf.errors import run_main

    run_main(main)  # rlnf's errors: one `error: ...` line, exit code 2; bugs keep their traceback
