#!/usr/bin/env python
"""Agreement of the reward-model-bias detectors with hand labels, per evaluated bias, on the
three labelled sets under src/emergent/resources/rmbias/ (docs/rmbias.md, "Agreement with hand
labels"):

* calibration.jsonl: written with the detectors; the detectors were tuned on it (in-sample);
* heldout.jsonl: the DEV set, written and labelled blind (the labeller never saw the detectors
  nor ran them); measured once as it was, then used to change the detectors (in-sample since);
* heldout_test.jsonl: the TEST set, written blind the same way by a second labeller, never read
  while the detectors were changed on DEV: its first measurement was out-of-sample; then used,
  like DEV, to change the detectors (in-sample since);
* heldout_final.jsonl: the FINAL set, written blind by a third labeller (about a third of it on
  the public evaluation prompts), never read while the detectors were changed: its first
  measurement is the out-of-sample number.

`rate` is over the rows where the detector gives a verdict; `rate_all` counts an abstention
(None) as a disagreement (emergent.rmbias.calibration.agreement_table).

    .venv/bin/python benchmarks/rmbias_agreement.py --tag after    # -> results/rmbias_agreement_after.json
"""
from __future__ import annotations

import argparse

import common  # noqa: F401  (puts src/ on sys.path)
from emergent.rmbias import calibration

SETS = {"calibration": "calibration.jsonl", "dev": "heldout.jsonl", "test": "heldout_test.jsonl",
        "final": "heldout_final.jsonl"}


def measure(name: str) -> list[dict] | None:
    path = calibration.CALIBRATION_PATH.parent / SETS[name]
    if not path.exists():
        return None
    return calibration.calibration_agreement(calibration.load_calibration(path))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tag", required=True, help="result file suffix, e.g. before / after")
    ap.add_argument("--sets", default="calibration,dev,test,final")
    args = ap.parse_args()
    payload = {}
    for name in args.sets.split(","):
        table = measure(name)
        if table is None:
            print(f"{name}: {SETS[name]} not there; skipped")
            continue
        payload[name] = table
        print(f"\n{name} ({SETS[name]})")
        common.print_table(table, ["bias_id", "n", "n_both", "n_agree", "rate", "rate_all",
                                   "a_only", "b_only", "a_none"])
    print(common.write_result(f"rmbias_agreement_{args.tag}", payload,
                              common.machine_info("detector (a) vs hand label (b)")))


if __name__ == "__main__":
    main()
