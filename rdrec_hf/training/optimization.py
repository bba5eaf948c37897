"""Row-sparse embedding gradients for catalogs of 100,000+ items (``sparse_embedding_gradients``).

A sampled-softmax step reads a few thousand of a million item rows, but a dense embedding gradient is a
``[V, D]`` tensor filled and summed every step and AdamW then moves every row: at 1,000,000 items that was 805 of
974 ms of a step (BENCHMARKS.md, section 5). With sparse gradients the embedding's gradient holds only the rows the
step read; :class:`LazyRowAdamW` updates those rows (the lazy Adam of ``torch.optim.SparseAdam`` and TensorFlow's
LazyAdam, with AdamW's decoupled weight decay on the same rows) and AdamW the dense parameters, and
:func:`clip_grad_norm_` measures and scales both kinds.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch


def clip_grad_norm_(parameters: Iterable[torch.nn.Parameter], max_norm: float) -> torch.Tensor:
    """``torch.nn.utils.clip_grad_norm_`` (2-norm) that also takes sparse gradients, which it coalesces in place
    (a sparse gradient may list a row twice: its norm needs each row once). Returns the total norm before
    clipping; ``max_norm=inf`` only measures it."""
    grads = []
    for parameter in parameters:
        if parameter.grad is None:
            continue
        if parameter.grad.is_sparse:
            parameter.grad = parameter.grad.coalesce()
        grads.append(parameter.grad)
    if not grads:
        return torch.tensor(0.0)
    norms = [torch.linalg.vector_norm(grad._values() if grad.is_sparse else grad) for grad in grads]
    total = torch.linalg.vector_norm(torch.stack(norms))
    if max_norm != float("inf"):
        scale = (max_norm / (total + 1e-6)).clamp(max=1.0)
        for grad in grads:
            (grad._values() if grad.is_sparse else grad).mul_(scale)
    return total


class LazyRowAdamW(torch.optim.AdamW):
    """AdamW whose parameters with a sparse gradient update only the rows in it.

    Dense gradients go through ``torch.optim.AdamW`` unchanged (fused where asked). For a sparse gradient (rows
    ``r``) the moments, the decoupled weight decay and the step of rows ``r`` follow AdamW; the other rows keep
    their values and moments (they are not decayed, and their momentum does not move them). The bias corrections
    count the parameter's steps, as ``torch.optim.SparseAdam`` does.
    """

    def __init__(self, params, **kwargs):
        super().__init__(params, **kwargs)
        for group in self.param_groups:
            if group.get("amsgrad") or group.get("maximize"):
                raise ValueError("LazyRowAdamW supports neither amsgrad nor maximize")

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        sparse = []
        for group in self.param_groups:
            for parameter in group["params"]:
                if parameter.grad is not None and parameter.grad.is_sparse:
                    self._row_step(parameter, parameter.grad.coalesce(), group)
                    sparse.append((parameter, parameter.grad))
                    parameter.grad = None  # AdamW's step skips a parameter without a gradient
        super().step()
        for parameter, grad in sparse:
            parameter.grad = grad
        return loss

    def _row_step(self, parameter: torch.Tensor, grad: torch.Tensor, group: dict) -> None:
        """AdamW on the rows of the coalesced sparse ``grad`` (indices ``[1, R]``, values ``[R, D]``)."""
        state = self.state[parameter]
        if not state:
            state["step"] = torch.tensor(0.0)
            state["exp_avg"] = torch.zeros_like(parameter)
            state["exp_avg_sq"] = torch.zeros_like(parameter)
        state["step"] += 1
        step = state["step"].item()
        rows, values = grad._indices()[0], grad._values()
        beta1, beta2 = group["betas"]
        lr = group["lr"] if not torch.is_tensor(group["lr"]) else group["lr"].item()
        exp_avg = state["exp_avg"][rows].mul_(beta1).add_(values, alpha=1 - beta1)
        exp_avg_sq = state["exp_avg_sq"][rows].mul_(beta2).addcmul_(values, values, value=1 - beta2)
        state["exp_avg"].index_copy_(0, rows, exp_avg)
        state["exp_avg_sq"].index_copy_(0, rows, exp_avg_sq)
        denominator = (exp_avg_sq / (1 - beta2**step)).sqrt_().add_(group["eps"])
        weights = parameter[rows]
        if group["weight_decay"]:
            weights.mul_(1 - lr * group["weight_decay"])
        weights.addcdiv_(exp_avg, denominator, value=-lr / (1 - beta1**step))
        parameter.index_copy_(0, rows, weights)


__all__ = ["LazyRowAdamW", "clip_grad_norm_"]
