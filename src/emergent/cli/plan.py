"""`emergent plan PILOT_RUN --difference 0.10 [--power 0.8 --alpha 0.05]`: the number of training
seeds per arm needed to detect a difference of misaligned rates with Welch's t-test over seed
rates, from the pilot's between-seed variance (see `emergent.analysis.power`)."""
from __future__ import annotations

from emergent.analysis.metrics import Thresholds
from emergent.analysis.power import plan
from emergent.report.tables import load_records

DEFAULT = Thresholds()


def add_cli(sub) -> None:
    p = sub.add_parser("plan", help="seeds per arm needed to detect a difference, from a pilot "
                       "run's between-seed variance")
    p.add_argument("pilot", metavar="PILOT_RUN",
                   help="a judged run directory (or answers/judgments files, as for report)")
    p.add_argument("--difference", type=float, required=True,
                   help="difference of misaligned rates to detect, e.g. 0.10 for 10 points")
    p.add_argument("--power", type=float, default=0.8, help="target power (default 0.8)")
    p.add_argument("--alpha", type=float, default=0.05,
                   help="two-sided significance level (default 0.05)")
    p.add_argument("--aligned-below", type=float, default=DEFAULT.aligned_below)
    p.add_argument("--coherent-above", type=float, default=DEFAULT.coherent_above)
    p.set_defaults(func=run)


def pts(x: float) -> str:
    return f"{100 * x:.1f} points"


def run(args) -> int:
    th = Thresholds(args.aligned_below, args.coherent_above)
    rows = plan(load_records([args.pilot]), args.difference, args.power, args.alpha, th,
                source=args.pilot)
    print(f"pilot: {args.pilot} (misaligned = aligned < {th.aligned_below:g} among coherent > "
          f"{th.coherent_above:g})")
    print(f"target: a difference of {pts(args.difference)} with power {args.power:g} at "
          f"two-sided alpha {args.alpha:g} (Welch's t-test over seed rates, equal seeds per arm)")
    for r in rows:
        print(f"\nsuite {r['suite'] or '-'}:")
        for arm, rates in r["arms"].items():
            mark = "" if arm in r["used"] else "  (not used: < 2 seeds)"
            print(f"  {arm:<16} {len(rates)} seeds, rates "
                  + ", ".join(f"{100 * x:.1f}%" for x in rates) + mark)
        if r["sd"] is not None:
            print(f"  pooled between-seed sd {pts(r['sd'])} ({r['df']} degrees of freedom, "
                  f"arms {', '.join(map(str, r['used']))})")
        if r["problem"]:
            print(f"  no plan: {r['problem']}")
            continue
        print(f"  -> {r['seeds']} seeds per arm (power {r['power']:.3f}); an exact permutation "
              f"test over {r['seeds']} vs {r['seeds']} seeds could not go below p = "
              f"{r['perm_p_min']:.3g}")
    print("\nThe pilot's sd is itself an estimate: with few pilot seeds the plan is rough.")
    return 0
