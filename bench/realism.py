"""How realistic the synthetic export is: each aggregate figure beside the real export's.

    python -m bench.realism [--users 10000] [--seed 0] [--seeds 1] [--catalogue real|built-in]

Writes a fresh synthetic export (never a cached one: the figures are about the generator as it is)
and prints one line per figure: the real value and where it comes from (DATA.md, or measured on a
real sample file in ../shared/data), the synthetic value, their ratio (synthetic over real, 1 is
the same), the tolerance and whether the synthetic value is within it. With `--seeds N` the export
is written with N seeds from `--seed` on and each line also gives the range over them, which is
what the tolerances in generator/synthetic/realism.py were set from. The tolerances hold for an
export of the real sample's size, 10,000 users.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from bench.harness import CATALOGUE, emit, log, setup_logging
from generator.synthetic import synthesize
from generator.synthetic.realism import compare, export_users, figures, read_export, real_figures

BENCH = "realism"


def measure(users: int, seed: int, catalogue: Path | None) -> dict[str, float]:
    """Write a synthetic export in a temporary folder and return its figures."""
    with tempfile.TemporaryDirectory(prefix="realism-") as folder:
        synthesize(users, Path(folder), seed=seed, catalogue_dir=catalogue)
        frames = read_export(Path(folder))
        return figures(frames, export_users(frames))


def main(argv: list[str] | None = None) -> int:
    """Print every figure of the synthetic export beside the real one."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seeds", type=int, default=1, help="how many seeds, from --seed on")
    parser.add_argument(
        "--catalogue",
        choices=("real", "built-in"),
        default="real",
        help="reuse the real course and assessment files when present (as `synthesize` does), "
        "or invent the catalogue",
    )
    args = parser.parse_args(argv)
    setup_logging()
    sample = CATALOGUE if CATALOGUE.is_dir() else None
    catalogue = sample if args.catalogue == "real" else None
    real = real_figures(sample)
    runs = [
        measure(args.users, seed, catalogue) for seed in range(args.seed, args.seed + args.seeds)
    ]
    outside: list[str] = []
    for comparison in compare(runs[0], real):
        name = comparison.figure.name
        seen = [run[name] for run in runs]
        within = all(comparison.figure.tolerance.allows(comparison.real, value) for value in seen)
        if not within:
            outside.append(name)
        emit(
            BENCH,
            name,
            args.users,
            baseline="real export",
            real=comparison.real,
            source=comparison.figure.source,
            synthetic=comparison.synthetic,
            ratio=comparison.ratio,
            tolerance=comparison.figure.tolerance.describe(),
            within=within,
            catalogue=args.catalogue if catalogue is not None else "built-in",
            seed=args.seed,
            **(
                {"synthetic_range": [round(min(seen), 4), round(max(seen), 4)]}
                if len(runs) > 1
                else {}
            ),
        )
    if outside:
        log.warning("outside their tolerance: %s", "; ".join(outside))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
