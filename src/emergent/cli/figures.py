"""`emergent figures RUN_DIR [--paper-reference DIR]`: the paper's figures from a run directory
as PNG + PDF (see `emergent.report.figures`)."""
from __future__ import annotations

from emergent.core.errors import UserError
from emergent.report.figures import draw_all
from emergent.report.figures_data import FIGURE_DATA


def add_cli(sub) -> None:
    p = sub.add_parser("figures", help="draw the paper's figures from a run directory (PNG + PDF)")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--paper-reference", metavar="DIR",
                   help="folder of the paper's aggregated CSVs, drawn beside the run as 'paper'")
    p.add_argument("--out", help="output folder (default: RUN_DIR/figures)")
    p.add_argument("--only", help=f"comma-separated subset of: {', '.join(FIGURE_DATA)}")
    p.add_argument("--n-boot", type=int, default=None,
                   help="bootstrap resamples for CIs (default: the run's metrics.n_boot or 10000)")
    p.set_defaults(func=run)


def run(args) -> int:
    only = [x for x in args.only.split(",") if x] if args.only else None
    for x in only or []:
        if x not in FIGURE_DATA:
            raise UserError(f"--only: no figure {x!r}; figures: {', '.join(FIGURE_DATA)}")
    result = draw_all(args.run_dir, args.paper_reference, args.out, only, args.n_boot)
    for name, r in result.items():
        print(f"{name}: " + (", ".join(str(p) for p in r) if isinstance(r, list)
                             else f"skipped ({r})"))
    return 0
