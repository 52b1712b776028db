#!/usr/bin/env python3
"""Trains a tiny pre-norm transformer block with its sequence split over torchrun's ranks, the
attention through seqpar.torch, then checks the losses against the same model trained on the
whole sequence in one process with PyTorch's SDPA.

    PYTHONPATH=python torchrun --standalone --nproc-per-node 2 examples/torch/train_tiny_transformer.py

Every rank holds the same parameters and 1/P of each batch's tokens (in the scheme's layout). Only
attention needs the other ranks' tokens; LayerNorm, the projections and the MLP act on each token
alone. Each rank's loss is its share of the global mean, so the global loss is their all_reduce
sum and the global gradient the all_reduce sum of the ranks' parameter gradients.
"""

import argparse
import sys

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

import seqpar.torch as spt


class Block(nn.Module):
    """x + attn(LN(x)), then x + MLP(LN(x)); GQA: kv_heads K/V heads shared by heads Q heads."""

    def __init__(self, dim, heads, kv_heads, attention):
        super().__init__()
        self.heads, self.kv_heads, self.head_dim = heads, kv_heads, dim // heads
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.wq = nn.Linear(dim, heads * self.head_dim, bias=False)
        self.wk = nn.Linear(dim, kv_heads * self.head_dim, bias=False)
        self.wv = nn.Linear(dim, kv_heads * self.head_dim, bias=False)
        self.wo = nn.Linear(heads * self.head_dim, dim, bias=False)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
        self.attention = attention  # (B, S, H, D) q, k, v -> (B, S, H, D), causal

    def forward(self, x):  # (B, S, dim): the whole sequence, or this rank's shard of it
        b, s, _ = x.shape
        h = self.norm1(x)
        q = self.wq(h).view(b, s, self.heads, self.head_dim)
        k = self.wk(h).view(b, s, self.kv_heads, self.head_dim)
        v = self.wv(h).view(b, s, self.kv_heads, self.head_dim)
        x = x + self.wo(self.attention(q, k, v).reshape(b, s, -1))
        return x + self.mlp(self.norm2(x))


def sdpa(q, k, v):
    """Causal attention on one process: PyTorch's SDPA on the (B, H, S, D) transpose."""
    out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                         is_causal=True, enable_gqa=True)
    return out.transpose(1, 2)


def batch(step, args):
    """The step's global batch, the same on every rank: input x and regression target y."""
    gen = torch.Generator().manual_seed(1000 + step)
    x = torch.randn(args.batch, args.seq, args.dim, generator=gen)
    return x, torch.randn(args.batch, args.seq, args.dim, generator=gen)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--scheme", default="auto", help="auto or one of " + ", ".join(spt.SCHEMES))
    ap.add_argument("--rtol", type=float, default=1e-4)
    args = ap.parse_args()

    dist.init_process_group("gloo")  # CPU tensors
    rank, size = dist.get_rank(), dist.get_world_size()
    scheme = args.scheme
    if scheme == "auto":  # seqpar's cost model picks the scheme (the same on every rank)
        scheme = spt.choose_scheme(args.seq, args.heads, args.kv_heads, args.dim // args.heads,
                                   batch=args.batch, causal=True, dtype=torch.float32)

    torch.manual_seed(0)  # the same initial parameters on every rank
    model = Block(args.dim, args.heads, args.kv_heads, spt.SeqparAttention(scheme=scheme))
    reference = Block(args.dim, args.heads, args.kv_heads, sdpa)
    reference.load_state_dict(model.state_dict())
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    ref_opt = torch.optim.AdamW(reference.parameters(), lr=1e-2)
    tokens = args.batch * args.seq * args.dim  # the global mean's denominator

    def shard(t):  # this rank's tokens of t (B, S, dim), in the scheme's layout
        return spt.shard(t, layout=scheme, heads_q=args.heads, heads_kv=args.kv_heads)

    losses, ref_losses = [], []
    for step in range(args.steps):
        x, y = batch(step, args)
        # Sequence parallel: this rank's tokens of x and y, in the scheme's layout.
        local_loss = (model(shard(x)) - shard(y)).pow(2).sum() / tokens
        opt.zero_grad()
        local_loss.backward()  # collective: attention's backward exchanges dK/dV
        for p in model.parameters():
            dist.all_reduce(p.grad)  # sum of the ranks' shares = gradient of the global mean
        opt.step()
        loss = local_loss.detach().clone()
        dist.all_reduce(loss)  # the global mean
        losses.append(loss.item())

        # The same model on the whole sequence, one process, SDPA.
        ref_loss = (reference(x) - y).pow(2).mean()
        ref_opt.zero_grad()
        ref_loss.backward()
        ref_opt.step()
        ref_losses.append(ref_loss.item())
        if rank == 0:
            print(f"step {step}: loss {losses[-1]:.6f}  (one process, SDPA: {ref_losses[-1]:.6f})")

    worst = max(abs(a - b) / abs(b) for a, b in zip(losses, ref_losses))
    params = max((p - r).abs().max().item()
                 for p, r in zip(model.parameters(), reference.parameters()))
    ok = worst <= args.rtol
    if rank == 0:
        name = scheme if isinstance(scheme, str) else scheme.scheme
        print(f"{size} ranks, scheme {name}, S = {args.seq}: losses within {worst:.1e} "
              f"(relative) of the one-process run, parameters within {params:.1e} after "
              f"{args.steps} steps: {'OK' if ok else f'FAIL (rtol {args.rtol})'}")
    dist.destroy_process_group()
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
