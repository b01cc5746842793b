"""Training objectives behind one small interface, so the loop (emergent.train.loop) has no
objective branches: batching, optimiser, schedule, checkpoints and resume are the same for all.

`make(cfg)` builds the objective named by `train.objective` from OBJECTIVES, once per run; its
constructor checks the config (`data.format` must be one of the objective's `formats`). The loop
then asks it:

* `tokenize(tokenizer, examples) -> (rows, counts)`: rows built from the examples (a row is what
  one example becomes: SFT one `(ids, mask)` sequence, DPO a (chosen, rejected) pair of them),
  and the manifest's rendering counts (emergent.train.rows: the shared overlong policy);
* `sequences(row)`: a row's `(ids, mask)` sequences, from which the loop takes a row's length
  (`row_length`, for length grouping) and trained tokens (`trained_tokens`); with a token budget a
  micro-batch plan counts `rows_per_example` padded rows per example (batching.pack_step);
* `collate(rows, pad_id)`: one micro-batch's tensors `(input_ids, attention_mask, labels)`
  (SFT with `train.padding_free`: one packed row, and its position ids as a fourth tensor);
* `prepare(model, rows, pad_id, out, device, dist)`: state taken from the model before any
  checkpoint is loaded (DPO: the frozen reference log-probabilities, saved as
  OUT/dpo_reference.pt); `dist` given when the model is FSDP-sharded: every rank prepares at once;
* `step_loss(model, micro, step, n_trained, device, weight=1.0) -> (loss, stats)`:
  forward+backward of one optimizer step's collated micro-batches (`step`: their example
  indices, `n_trained`: their trained tokens), the gradient that of `weight` x the loss (an
  FSDP rank's share of the step, emergent.train.distributed.fsdp_step_loss; the returned loss
  is not weighted); `stats` are extra train-log fields (DPO: reward accuracy and margin);
* `normaliser(step, n_trained)`: what `step_loss` divided the step's summed loss by (SFT: the
  trained tokens, DPO: the pairs); data-parallel training (emergent.train.distributed) sums it
  over the ranks' shares of a step to weight each rank's gradient;
* `heldout_record(example)`: the line an example held out (`data.heldout_fraction`) gets in
  OUT/heldout.jsonl.

To add an objective: subclass `Objective`, set `name` and `formats`, implement `tokenize`,
`collate` and `step_loss` (and `sequences` / `prepare` when the defaults do not fit), register
it in OBJECTIVES and in the `train.objective` choices of `emergent.core.config.TrainConfig`.
"""
from __future__ import annotations

from pathlib import Path

from emergent.core.errors import UserError
from emergent.train import distributed, dpo, sft
from emergent.train.batching import collate, collate_packed
from emergent.train.kernels import attention_kernels, use_segment_sdpa


class Objective:
    """The base of every objective: config check and the defaults for one-sequence rows."""

    name = ""
    formats: tuple[str, ...] = ()  # the data.format values it trains on
    rows_per_example = 1  # padded rows one example takes in a forward pass

    def __init__(self, cfg):
        if cfg.data.format not in self.formats:
            raise UserError(f"train.objective {self.name} needs data.format "
                            f"{' or '.join(self.formats)} (got {cfg.data.format})")
        self.cfg = cfg

    def tokenize(self, tokenizer, examples) -> tuple[list, dict]:
        raise NotImplementedError

    def sequences(self, row) -> tuple:
        """The row's (ids, mask) sequences."""
        return (row,)

    def row_length(self, row) -> int:
        """Tokens of the row's longest sequence."""
        return max(len(ids) for ids, _ in self.sequences(row))

    def trained_tokens(self, row) -> int:
        """Tokens that carry loss, summed over the row's sequences (the first never does)."""
        return sum(sum(mask[1:]) for _, mask in self.sequences(row))

    def collate(self, rows: list, pad_id: int):
        raise NotImplementedError

    def prepare(self, model, rows: list, pad_id: int, out: Path, device: str,
                dist: distributed.Dist = distributed.SINGLE) -> None:
        """State from the model before any checkpoint is loaded; none by default. `dist`: the
        ranks of a sharded model, which all call this at once."""

    def step_loss(self, model, micro: list, step: list[list[int]], n_trained: int,
                  device: str, weight: float = 1.0) -> tuple:
        raise NotImplementedError

    def normaliser(self, step: list[list[int]], n_trained: int) -> int:
        """What `step_loss` divides the step's summed loss by: its trained tokens."""
        return n_trained

    def heldout_record(self, example) -> dict:
        """The OUT/heldout.jsonl line of a held-out example."""
        return {"messages": list(example.messages), "line": example.line}


class SFT(Objective):
    """Token cross-entropy normalised by the step's trained tokens (emergent.train.sft)."""

    name = "sft"
    formats = ("chat", "text")

    def tokenize(self, tokenizer, examples):
        return sft.tokenize_dataset(self.cfg, tokenizer, examples)

    def collate(self, rows, pad_id):
        return collate_packed(rows) if self.cfg.train.padding_free else collate(rows, pad_id)

    def prepare(self, model, rows, pad_id, out, device, dist=distributed.SINGLE):
        """`train.padding_free`: SDPA runs per packed example (kernels.use_segment_sdpa), and
        the model must keep packed examples apart (sft.check_packing)."""
        if self.cfg.train.padding_free:
            use_segment_sdpa(model)
            sft.check_packing(model, device)

    def step_loss(self, model, micro, step, n_trained, device, weight=1.0):
        loss = sft.step_loss(model, micro, n_trained, device, self.cfg.train.loss_chunk_tokens,
                             weight)
        return loss, {}


class DPO(Objective):
    """DPO on preference pairs against the policy before step 1 (emergent.train.dpo)."""

    name = "dpo"
    formats = ("preference",)
    rows_per_example = 2

    def __init__(self, cfg):
        super().__init__(cfg)
        if cfg.train.dpo_beta <= 0:
            raise UserError(f"train.dpo_beta must be > 0, got {cfg.train.dpo_beta}")
        self.reference = None  # (n_pairs, 2) reference log-probabilities, from prepare()

    def tokenize(self, tokenizer, examples):
        return dpo.tokenize_pairs(self.cfg, tokenizer, examples)

    def sequences(self, row):
        return row

    def collate(self, rows, pad_id):
        return dpo.collate_pairs(rows, pad_id)

    def prepare(self, model, rows, pad_id, out, device, dist=distributed.SINGLE):
        with attention_kernels(device):
            self.reference = dpo.reference_logps(model, rows, pad_id, out, device,
                                                 self.cfg.train.batch_size,
                                                 self.cfg.train.loss_chunk_tokens, dist)

    def step_loss(self, model, micro, step, n_trained, device, weight=1.0):
        t = self.cfg.train
        with attention_kernels(device):
            return dpo.step_loss(model, [tuple(x.to(device) for x in m) for m in micro],
                                 [self.reference[mb] for mb in step], t.dpo_beta,
                                 sum(map(len, step)), t.loss_chunk_tokens, weight)

    def normaliser(self, step, n_trained):
        """DPO averages over the step's pairs."""
        return sum(map(len, step))

    def heldout_record(self, example):
        return {**super().heldout_record(example), "rejected": list(example.rejected)}


OBJECTIVES: dict[str, type[Objective]] = {"sft": SFT, "dpo": DPO}


def make(cfg) -> Objective:
    """The objective `train.objective` names, checked against the config."""
    name = cfg.train.objective
    if name not in OBJECTIVES:
        raise UserError(f"train.objective {name!r} is unknown; known: {', '.join(OBJECTIVES)}")
    return OBJECTIVES[name](cfg)
