"""The validation loss of the LLM training loop (methods.llm.train): L_f with the objective's token
weights, the quantity early stopping watches (protocol section 4), and the plain token
cross-entropy beside it, each a sum over all validation label tokens reduced over processes.
"""

from __future__ import annotations

from methods.llm.batching import EpochBatches, collate
from methods.llm.examples import Example
from methods.llm.objective import Objective


def validation_loss(
    module,
    examples: list[Example],
    pad_id: int,
    objective: Objective,
    batch_size: int,
    accelerator,
    group_by_length: bool = False,
) -> tuple[float, float]:
    """(L_f with the objective's token weights, plain token CE) over `examples`, reduced over
    processes; group_by_length: micro-batches sorted by length (less padding, the same sums)."""
    import torch

    from methods.llm.loss import token_ce, weights_at

    module.eval()
    sums = torch.zeros(4, dtype=torch.float64, device=accelerator.device)  # sum w*ce, sum w, sum ce, count
    lengths = [len(e.prompt) + len(e.response) for e in examples] if group_by_length else None
    batches = EpochBatches(len(examples), batch_size, 0, shuffle=False, lengths=lengths).batches()
    with torch.no_grad():
        for index in batches[accelerator.process_index :: accelerator.num_processes]:
            batch = collate([examples[i] for i in index], [], pad_id, counterfactual=False)
            batch = {k: v.to(accelerator.device, non_blocking=True) if hasattr(v, "to") else v for k, v in batch.items()}
            with accelerator.autocast():
                z_f, _ = module(batch)
            ce = token_ce(z_f, batch["labels"]).double()
            w = weights_at(batch["label_pos"], batch["label_len"], objective.beta, objective.weighting).double()
            sums += torch.stack([(w * ce).sum(), w.sum(), ce.sum(), ce.new_tensor(float(ce.numel()))])
    sums = accelerator.reduce(sums, reduction="sum")
    module.train()
    return float(sums[0] / sums[1]), float(sums[2] / sums[3])
