"""`emergent push RUN --repo ORG/NAME [--dataset-repo ORG/NAME2] [--dry-run]`: upload a run's
LoRA adapters with a generated model card, and its answers tables as a dataset, to the Hugging
Face Hub (see `emergent.report.share`). The token is huggingface_hub's (HF_TOKEN or
`hf auth login`); it is never printed or written."""
from __future__ import annotations

from emergent.report.share import build_plan, upload


def add_cli(sub) -> None:
    p = sub.add_parser("push", help="upload a run's adapters (with a model card) and its "
                       "answers (as a dataset) to the Hugging Face Hub")
    p.add_argument("run_dir", metavar="RUN")
    p.add_argument("--repo", required=True, metavar="ORG/NAME",
                   help="model repo for the adapters (ARM/seedK/ subfolders) and the card")
    p.add_argument("--dataset-repo", metavar="ORG/NAME",
                   help="dataset repo for answers.jsonl, judgments.jsonl, summary.csv "
                   "(default: REPO-answers)")
    p.add_argument("--no-dataset", action="store_true",
                   help="upload the adapters only, not the answers tables")
    p.add_argument("--private", action="store_true", help="create the repos private")
    p.add_argument("--allow-unfinished", action="store_true",
                   help="push a run whose manifest lists units not done (the card says so)")
    p.add_argument("--dry-run", action="store_true",
                   help="print the repos, files with sizes and cards; upload nothing")
    p.set_defaults(func=run)


def run(args) -> int:
    plan = build_plan(args.run_dir, args.repo, args.dataset_repo,
                      include_answers=not args.no_dataset,
                      allow_unfinished=args.allow_unfinished)
    if args.dry_run:
        print(plan.describe())
        print("\n(dry run: nothing uploaded)")
        return 0
    for url in upload(plan, private=True if args.private else None):
        print(f"pushed {url}")
    return 0
