"""MixGCF (Huang et al., KDD 2021): LightGCN trained with hard negatives synthesised from a
pool of M sampled candidates per positive. Per layer l, each candidate is mixed with the
positive (positive mixing: ``a_l e_pos^l + (1 - a_l) e_cand^l``, a_l ~ U(0, 1) per batch row and
layer); hop mixing then keeps, per layer, the mixed candidate scoring highest against the user's
layer-l embedding, and the synthesised negative is the mean over layers of the kept ones. Users
and positives are pooled the same way (mean of layers 0..L) for the BPR loss. The layers come
from the model's ``layer_outputs`` (the fused ``temporal_propagate``, ``backend.layers``),
gathered only at the batch's rows.

Published defaults: M = 64 candidates, mean pooling (the MixGCF code's Gowalla/Yelp2018 runs).
"""

from __future__ import annotations

import torch

from ..runtime import derive_seed
from .base import EgoRows, bpr_loss
from .lightgcn import EmbeddingModel

__all__ = ["MixGCF"]


class MixGCF(EmbeddingModel):
    loss_name = "mixgcf"
    negatives = 64  # the candidate pool M

    unshardable = "hop mixing ranks candidates by whole-row scores"

    def batch_loss(self, graph, users, pos, neg, keep_prob: float, seed: int,
                   weight_decay: float, mode: str = "auto") -> torch.Tensor:
        if neg.dim() == 1:
            neg = neg.unsqueeze(1)
        b, m = users.numel(), neg.shape[1]
        rows = torch.cat([users, graph.num_users + pos, graph.num_users + neg.reshape(-1)])
        scope, ego = self.scope_through(
            graph, rows, mode,
            lambda sub, x0: tuple(self.layer_outputs(sub, x0, keep_prob, seed)),
            lambda g: (g,) + (None,) * self.num_layers)  # an isolated row's layers are 0

        nl = len(scope)
        plain = type(self).readout is EmbeddingModel.readout  # rows score as propagated

        def pick(k, at):  # every layer's rows as they score (a baseline's readout applied)
            return self.readout(scope.pick(k, at))
        # Hop mixing without the [B, M, L+1, d] mixed tensor (most of a batch's time when it was
        # built): a mixed candidate scores a * s_pos + (1 - a) * s_cand with a < 1 shared by the
        # pool, so the hardest is the candidate with the highest s_cand, found from [B, M]
        # scores per layer. Only the users', positives' and kept candidates' rows are read with
        # gradient, so the backward never spreads a [B * M, d] gradient of zeros.
        gen = torch.Generator(device=users.device).manual_seed(derive_seed(seed, "mixgcf-alpha"))
        alpha = torch.rand(b, 1, nl, 1, generator=gen, device=users.device,
                           dtype=ego.table.dtype)[:, 0, :, 0]  # [B, L+1]
        pools = torch.arange(2 * b, rows.numel(), device=rows.device).view(b, m)  # rows' index
        head = torch.arange(2 * b, device=rows.device)  # users, then positives
        e_u, e_p, e_n = [], [], []
        for k in range(nl):
            with torch.no_grad():
                u = pick(k, head[:b])
                if plain:  # [B, M] scores by one fused sddmm, no [B * M, d] gather
                    scores = scope.dots(k, pools, u)
                else:
                    cand = pick(k, pools.reshape(-1)).view(b, m, -1)
                    scores = torch.bmm(cand, u.unsqueeze(2)).squeeze(2)
                best = scores.argmax(1)  # [B]
            kept = pools.gather(1, best.unsqueeze(1)).squeeze(1)
            sel = pick(k, torch.cat([head, kept]))  # [3B, d] with gradient
            a = alpha[:, k:k + 1]
            e_u.append(sel[:b])
            e_p.append(sel[b:2 * b])
            e_n.append(a * sel[b:2 * b] + (1 - a) * sel[2 * b:])
        e_u, e_p, e_n = (torch.stack(v, dim=1) for v in (e_u, e_p, e_n))  # [B, L+1, d]
        # L2 on the users' and positives' ego rows and the synthesised negatives' layer 0
        users_pos = EgoRows(ego.table, rows[:2 * b], ego._gather)
        reg = users_pos.square_sum() + e_n[:, 0].pow(2).sum()
        return bpr_loss(e_u.mean(1), e_p.mean(1), e_n.mean(1), torch.zeros(0), 0.0) + \
            weight_decay * 0.5 * reg / b
