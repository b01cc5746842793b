"""`emergent direction RUN_DIR`: the misalignment direction of an arm; `--sample` writes answers
with it ablated, `--compare` prints misaligned rates (see `emergent.analysis.direction`)."""
from __future__ import annotations

import json
from pathlib import Path

from emergent.analysis.direction import (compare_rows, direction_file, extract_direction,
                                         final_records, format_table, sample_interventions)
from emergent.core.errors import UserError
from emergent.core.rundir import RunDir


def add_cli(sub) -> None:
    p = sub.add_parser("direction", help="misalignment direction of an arm: extract it, sample "
                       "with it ablated (--sample), compare misaligned rates (--compare)")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--arm", default="insecure")
    p.add_argument("--layers", default=None, help="comma-separated decoder layers (default all)")
    p.add_argument("--out", default=None, help="direction file (default "
                   "RUN/directions/<arm>.safetensors)")
    p.add_argument("--suites", default=None, help="comma-separated answer suites to use")
    p.add_argument("--aligned-above", type=float, default=70.0)
    p.add_argument("--from-base", action="store_true", help="activations of the base model")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--sample", action="store_true", help="sample <arm>+ablate and "
                   "<arm>+random-ablate answers with the saved direction")
    p.add_argument("--suite", default="main", help="question suite for --sample")
    p.add_argument("--samples", type=int, default=None, help="samples per paraphrase (--sample)")
    p.add_argument("--source-layer", type=int, default=None, help="ablate this layer's direction "
                   "at every layer (default: each layer its own)")
    p.add_argument("--compare", action="store_true", help="print the misaligned-rate table")
    p.add_argument("overrides", nargs="*", help="sampling keys for --sample: max_new_tokens=300")
    p.set_defaults(func=run)


def run(args) -> int:
    run_dir = Path(args.run_dir)
    if args.compare:
        return _compare(run_dir, args)
    # the default file is named after the arm: one safe path part, else one error line
    out = Path(args.out) if args.out else direction_file(run_dir, args.arm)
    if args.sample:
        return _sample(run_dir, out, args)
    layers = [int(x) for x in args.layers.split(",")] if args.layers else None
    path = extract_direction(run_dir, args.arm, layers=layers, out=out,
                             suites=args.suites.split(",") if args.suites else None,
                             aligned_above=args.aligned_above, from_base=args.from_base,
                             batch_size=args.batch_size)
    meta = json.loads(path.with_suffix(".json").read_text())
    print(f"direction of {args.arm} written to {path} ({meta['counts']}); norms per layer: "
          + ", ".join(f"{l}:{n:.3g}" for l, n in zip(meta["layers"], meta["norms"])))
    return 0


def _compare(run_dir: Path, args) -> int:
    rows = compare_rows(final_records(run_dir), args.arm,
                        suites=args.suites.split(",") if args.suites else None)
    if not rows:
        raise UserError(f"{run_dir}: no answers of arm '{args.arm}'")
    print(format_table(rows))
    return 0


def _sample(run_dir: Path, out: Path, args) -> int:
    if not out.exists():
        raise UserError(f"{out}: no direction yet; run `emergent direction "
                        f"{run_dir} --arm {args.arm}` first")
    n = sample_interventions(run_dir, args.arm, out, args.suite, samples=args.samples,
                             source_layer=args.source_layer, overrides=args.overrides)
    answers = RunDir(run_dir).answers_path
    print(f"{n} new answers written to {answers}; judge them with "
          f"`emergent judge {answers}`, then --compare")
    return 0
