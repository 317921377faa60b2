"""GradCraft (Bai et al., "GradCraft: Elevating Multi-task Recommendations through Holistic Gradient
Crafting", KDD 2024): several losses combined through their gradients instead of fixed weights.
Here the tasks are CFT's two terms, L_f and L_cf (balance=gradcraft, methods.llm.objective).

Per task i, g_i is its gradient over the shared parameters, flattened (one backward per task).
1. Magnitudes: m_i = b m_i + (1 - b) |g_i|, a moving average started at 0 as in the reference
   code (only the ratios m_max / m_i are used, so the zero start is the bias-corrected average).
   Each gradient is scaled part of the way to the largest magnitude:
       g_i <- r g_i m_max / m_i + (1 - r) g_i          (a zero magnitude leaves g_i as it is)
2. Directions: for each i, G stacks the aligned g_j that conflict with it (g_i . g_j < 0) and
       (G G^T) w = -G g_i + e |g_i| |g_j|   (one row per conflicting j),   g_i <- g_i + G^T w,
   so that afterwards g_i . g_j = e |g_i| |g_j| >= 0 for every j it conflicted with (the norms and
   products those of the aligned, not yet projected, gradients). Each g_i is projected against
   the aligned gradients, never against already projected ones.
3. Merge: the update is the mean of the crafted gradients over the tasks for the parameters every
   task reaches, their sum for a parameter only some tasks reach (the reference code's reduction;
   the other tasks' rows are 0 there). Whether a task reaches a parameter is decided per
   parameter tensor: autograd gave it a gradient in that task's backward.

The reference implementation is github.com/baiyimeng/GradCraft, solvers/
global_pc_grad_magnitude_positive.py (b, r, e and the steps above); the settings' values are in
methods.llm.objective. The conflicting gradients must be linearly independent for G G^T to be
invertible, as there; with CFT's two tasks G has one row, never singular.

How it is computed: one Gram matrix of the raw gradients (T x T, T tasks) gives every norm and
inner product; scaling and projection are T x T algebra on it, so the update is one row of T
coefficients applied to the T gradients (no crafted copy of the gradients is stored), and nothing
is read on the host: the conflicting sets are masks, each i's system is solved as a T x T system
whose rows outside its conflicting set are the identity.

`TaskGradients` is what the training loop uses (methods.llm.train): per task it accumulates the
gradients of the trainable parameters over the passes of one optimiser step (the same 1/accum
scaling as a plain step), and at the step averages them over processes (data-parallel training),
crafts the update from the all-reduced per-task gradients, and writes it to the parameters'
`.grad` for gradient clipping and the optimiser. Crafting per process and then averaging would not
be the same: the scaling and the projection are not linear in the gradients.
"""

from __future__ import annotations

import torch

from methods.llm.objective import GradCraftSettings


def next_magnitudes(norms: torch.Tensor, magnitudes: torch.Tensor, b: float) -> torch.Tensor:
    """m <- b m + (1 - b) |g| per task."""
    return b * magnitudes + (1.0 - b) * norms


def alignment_scales(magnitudes: torch.Tensor, r: float) -> torch.Tensor:
    """s_i with aligned g_i = s_i g_i: r m_max / m_i + (1 - r), and 1 where m_i = 0."""
    positive = magnitudes > 0
    ratio = torch.where(positive, magnitudes.max() / torch.where(positive, magnitudes, 1.0), 1.0)
    return torch.where(positive, r * ratio + (1.0 - r), 1.0)


def projection_weights(gram: torch.Tensor, e: float) -> torch.Tensor:
    """W (T x T) with crafted g_i = g_i + sum_j W[i, j] g_j, from the Gram matrix of the aligned
    gradients: row i solves (G G^T) w = -G g_i + e |g_i| |g_j| over the j conflicting with i and is
    0 elsewhere."""
    gram = gram.double()
    n = gram.shape[0]
    norms = gram.diagonal().clamp(min=0).sqrt()
    conflict = (gram < 0).double()  # conflict[i, j]: g_i . g_j < 0 (never i = j)
    eye = torch.eye(n, dtype=gram.dtype, device=gram.device)
    # system i: the Gram matrix on i's conflicting set, the identity on the other rows
    masks = conflict[:, :, None] * conflict[:, None, :]  # (i, j, k)
    systems = gram[None] * masks + eye[None] * (1.0 - conflict)[:, :, None]
    rhs = conflict * (-gram + e * norms[:, None] * norms[None, :])  # rhs[i, j] = -g_i . g_j + e |g_i||g_j|
    return torch.linalg.solve_ex(systems, rhs[:, :, None])[0][:, :, 0]


def align(grads: torch.Tensor, magnitudes: torch.Tensor, settings: GradCraftSettings) -> tuple[torch.Tensor, torch.Tensor]:
    """Step 1 on (T, P) gradients: (the aligned gradients, the new magnitudes)."""
    magnitudes = next_magnitudes(grads.double().norm(dim=1), magnitudes.double(), settings.b)
    return grads * alignment_scales(magnitudes, settings.r).to(grads.dtype)[:, None], magnitudes


def project(aligned: torch.Tensor, e: float) -> torch.Tensor:
    """Step 2 on (T, P) aligned gradients: the crafted gradients."""
    weights = projection_weights(aligned.double() @ aligned.double().T, e)
    eye = torch.eye(len(aligned), dtype=weights.dtype, device=weights.device)
    return ((eye + weights).to(aligned.dtype)) @ aligned


def merge(crafted: torch.Tensor, shared: torch.Tensor | None = None) -> torch.Tensor:
    """Step 3: the mean over the tasks where `shared` (P,) is true (None: everywhere), the sum elsewhere."""
    mean = crafted.mean(dim=0)
    if shared is None:
        return mean
    return torch.where(shared, mean, crafted.sum(dim=0))


def crafted_update(
    grads: torch.Tensor, magnitudes: torch.Tensor, settings: GradCraftSettings
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Steps 1-3 at once on (T, P) gradients: (the mean of the crafted gradients (P,), the new
    magnitudes, the T coefficients c with that mean = c @ grads). Where only some tasks reach a
    parameter the update there is T times the mean (merge's sum)."""
    gram = (grads @ grads.T).double()  # float32 products, accumulated by the matrix product
    magnitudes = next_magnitudes(gram.diagonal().clamp(min=0).sqrt(), magnitudes.double(), settings.b)
    scales = alignment_scales(magnitudes, settings.r)
    weights = projection_weights(gram * scales[:, None] * scales[None, :], settings.e)
    eye = torch.eye(len(grads), dtype=weights.dtype, device=weights.device)
    coefficients = ((eye + weights) * scales[None, :]).mean(dim=0)  # crafted = (I + W) diag(s) g
    return coefficients.to(grads.dtype) @ grads, magnitudes, coefficients


class TaskGradients:
    """Per-task gradients of `params` (the trainable parameters, LoRA's adapters with LoRA), each
    task's accumulated in a float32 row of one (T, P) buffer over the passes of an optimiser step."""

    def __init__(self, params: list, n_tasks: int, settings: GradCraftSettings, magnitudes: list[float] | None = None):
        self.params = list(params)
        self.settings = settings
        device = self.params[0].device
        sizes = [p.numel() for p in self.params]
        self.grads = torch.zeros((n_tasks, sum(sizes)), dtype=torch.float32, device=device)
        starts = [sum(sizes[:k]) for k in range(len(sizes))]
        self.views = [[row[s : s + p.numel()].view_as(p) for s, p in zip(starts, self.params)] for row in self.grads]
        self.slices = [slice(s, s + n) for s, n in zip(starts, sizes)]
        self.touched = torch.zeros((n_tasks, len(self.params)), dtype=torch.float32)  # on the host
        self.magnitudes = torch.tensor(magnitudes or [0.0] * n_tasks, dtype=torch.float64, device=device)

    def collect(self, task: int) -> None:
        """After task `task`'s backward: add the parameters' gradients to its row and clear them,
        so that the next task's backward starts from none."""
        for k, (p, view) in enumerate(zip(self.params, self.views[task])):
            if p.grad is not None:
                view.add_(p.grad)
                self.touched[task, k] = 1.0
                p.grad = None

    def write_update(self, num_processes: int = 1) -> None:
        """At an optimiser step: average every task's gradients over the processes, craft the
        update, write it to the parameters' `.grad` and start the next step from zero."""
        touched = self.touched
        if num_processes > 1:
            import torch.distributed as dist

            dist.all_reduce(self.grads)
            self.grads /= num_processes  # as DDP averages a plain step's gradients
            touched = touched.to(self.grads.device)
            dist.all_reduce(touched, op=dist.ReduceOp.MAX)
            touched = touched.cpu()
        update, self.magnitudes, _ = crafted_update(self.grads, self.magnitudes, self.settings)
        n_tasks = len(self.grads)
        reached = touched.sum(dim=0).tolist()  # tasks reaching each parameter
        for p, part, count in zip(self.params, self.slices, reached):
            if count == 0:
                p.grad = None  # no task reached it: the optimiser leaves it alone, as in a plain step
                continue
            grad = update[part].view_as(p)
            p.grad = (grad if count == n_tasks else grad * n_tasks).to(p.dtype)
        self.grads.zero_()
        self.touched.zero_()
