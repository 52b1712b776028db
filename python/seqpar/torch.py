"""seqpar for PyTorch: exact attention over a sequence split across the ranks of a
torch.distributed process group, forward and backward, as a differentiable custom op.

Every rank holds a shard of the sequence in the layout of the scheme (see ``shard``):

    import torch.distributed as dist
    import seqpar.torch as spt

    dist.init_process_group("gloo")                        # torchrun; CPU tensors
    scheme = "zigzag"
    q = spt.shard(q_global, layout=scheme)                 # (B, S/P, Hq, D), this rank's tokens
    k = spt.shard(k_global, layout=scheme)                 # (B, S/P, Hkv, D)
    v = spt.shard(v_global, layout=scheme)
    out = spt.attention(q, k, v, scheme=scheme, causal=True)  # (B, S/P, Hq, D)
    out.sum().backward()                                   # dq, dk, dv through seqpar's plan
    out_global = spt.unshard(out, layout=scheme)           # (B, S, Hq, D) on every rank

Tensors are (batch, seq, heads, head_dim), FlashAttention's order (transpose(1, 2) of
scaled_dot_product_attention's). GQA: Hq % Hkv == 0, K/V are never replicated on the wire
(enable_gqa=True semantics). Storage dtypes float32, bfloat16, float16; partial results merge in
fp32. Communication goes through the group's own process group (gloo for CPU tensors).
"""

from __future__ import annotations

import math
from typing import NamedTuple, Optional, Tuple, Union

import torch
import torch.distributed as dist

from . import _plans

__all__ = [
    "attention",
    "shard",
    "unshard",
    "positions",
    "choose_scheme",
    "SchemeChoice",
    "clear_plan_cache",
    "SCHEMES",
    "SeqparAttention",
]

# The schemes a plan can run (seqpar's C ABI names); "auto" resolves to one of them.
SCHEMES = ("ring", "striped", "zigzag", "lightseq", "ulysses", "hybrid", "tree")


def _group_or_world(group: Optional[dist.ProcessGroup]) -> dist.ProcessGroup:
    if not dist.is_available() or not dist.is_initialized():
        raise RuntimeError(
            "seqpar.torch: torch.distributed is not initialised; call "
            "torch.distributed.init_process_group first (e.g. under torchrun)")
    return group if group is not None else dist.group.WORLD


class SchemeChoice(NamedTuple):
    """A scheme and, for "hybrid", its Ulysses degree U (0: the plan's default)."""

    scheme: str
    ulysses_degree: int = 0


def choose_scheme(seq_len: int, heads_q: int, heads_kv: int, head_dim: int, *, batch: int = 1,
                  causal: bool = True, dtype: torch.dtype = torch.bfloat16, backward: bool = True,
                  group: Optional[dist.ProcessGroup] = None,
                  ranks_per_node: int = 0) -> SchemeChoice:
    """The scheme seqpar's cost model (seqpar-run --scheme auto's) predicts fastest for this
    problem on ``group``'s ranks: CPU ranks, ``ranks_per_node`` per node (0: one node). What
    ``attention(..., scheme="auto")`` runs; pass the result as ``layout`` to ``shard`` and
    ``unshard`` (or as ``scheme`` to ``attention``).

    Collective the first time for given arguments: rank 0 measures the CPU kernel's rate (about
    a second, then cached on disk: $SEQPAR_CACHE_DIR, else ~/.cache/seqpar), chooses, and
    broadcasts the choice, so every rank runs the same scheme. Later calls are local.
    """
    return _plans.choose_scheme(_group_or_world(group), seq_len, heads_q, heads_kv, head_dim,
                                batch, causal, _plans.dtype_name(dtype), backward,
                                ranks_per_node)


def positions(seq_len: int, *, layout: Union[str, SchemeChoice],
              group: Optional[dist.ProcessGroup] = None, rank: Optional[int] = None,
              heads_q: Optional[int] = None, heads_kv: Optional[int] = None,
              ulysses_degree: int = 0, ranks_per_node: int = 0) -> torch.Tensor:
    """The global token positions (int64, in local order) that ``rank`` (default: this rank)
    holds in ``layout``: a scheme's name (its layout), a SchemeChoice, or "contiguous",
    "striped", "zigzag". "hybrid"'s layout depends on its U x R grid: pass the heads_q,
    heads_kv (or the ulysses_degree) and ranks_per_node that ``attention`` gets; without them
    it is refused rather than guessed."""
    group = _group_or_world(group)
    size = dist.get_world_size(group)
    if rank is None:
        rank = dist.get_rank(group)
    scheme, ulysses_degree, heads_q, heads_kv = _layout_args(layout, ulysses_degree, heads_q,
                                                             heads_kv)
    return _plans.layout_positions(scheme, size, rank, seq_len, heads_q, heads_kv,
                                   ulysses_degree, ranks_per_node)


def shard(x: torch.Tensor, group: Optional[dist.ProcessGroup] = None,
          layout: Optional[Union[str, SchemeChoice]] = None, *, seq_dim: int = 1,
          heads_q: Optional[int] = None, heads_kv: Optional[int] = None, ulysses_degree: int = 0,
          ranks_per_node: int = 0) -> torch.Tensor:
    """This rank's shard of ``x``, a global tensor that every rank holds whole: the rows along
    ``seq_dim`` that ``layout`` gives this rank, in local order (no communication).
    ``layout`` (required): the scheme ``attention`` runs (its name or a SchemeChoice) or
    "contiguous", "striped", "zigzag"; the keywords as in ``positions``."""
    if layout is None:
        raise ValueError("seqpar.torch.shard: pass layout=, the scheme attention() runs (a name "
                         "or choose_scheme()'s result)")
    seq_dim = seq_dim % x.dim()
    index = positions(x.shape[seq_dim], layout=layout, group=group, heads_q=heads_q,
                      heads_kv=heads_kv, ulysses_degree=ulysses_degree,
                      ranks_per_node=ranks_per_node)
    return x.index_select(seq_dim, index.to(x.device))


def unshard(x: torch.Tensor, group: Optional[dist.ProcessGroup] = None,
            layout: Optional[Union[str, SchemeChoice]] = None, *, seq_dim: int = 1,
            seq_len: Optional[int] = None, heads_q: Optional[int] = None,
            heads_kv: Optional[int] = None, ulysses_degree: int = 0,
            ranks_per_node: int = 0) -> torch.Tensor:
    """The global tensor from every rank's shard ``x`` (the inverse of ``shard``, the same
    ``layout`` and keywords), on every rank: an all_gather over ``group``. ``seq_len``: the
    global length (default: the local length times the group's size). Not differentiable."""
    if layout is None:
        raise ValueError("seqpar.torch.unshard: pass layout=, the one the shards were made with")
    group = _group_or_world(group)
    size = dist.get_world_size(group)
    seq_dim = seq_dim % x.dim()
    seq_len = seq_len if seq_len is not None else x.shape[seq_dim] * size
    scheme, ulysses_degree, heads_q, heads_kv = _layout_args(layout, ulysses_degree, heads_q,
                                                             heads_kv)
    per_rank = [_plans.layout_positions(scheme, size, r, seq_len, heads_q, heads_kv,
                                        ulysses_degree, ranks_per_node) for r in range(size)]
    longest = max(p.numel() for p in per_rank)
    local = x.detach().movedim(seq_dim, 0).contiguous()
    if local.shape[0] < longest:  # uneven contiguous splits: pad to the longest shard
        pad = local.new_zeros((longest - local.shape[0],) + tuple(local.shape[1:]))
        local = torch.cat([local, pad])
    gathered = [torch.empty_like(local) for _ in range(size)]
    dist.all_gather(gathered, local, group=group)
    out = local.new_empty((seq_len,) + tuple(local.shape[1:]))
    for r, index in enumerate(per_rank):
        out.index_copy_(0, index.to(out.device), gathered[r][: index.numel()])
    return out.movedim(0, seq_dim)


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
              group: Optional[dist.ProcessGroup] = None,
              scheme: Union[str, SchemeChoice] = "auto",
              causal: bool = True, softmax_scale: Optional[float] = None,
              return_lse: bool = False, *, seq_len: Optional[int] = None,
              ulysses_degree: int = 0, ranks_per_node: int = 0, check_finite: bool = True
              ) -> Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
    """Exact attention of this rank's queries against the whole sequence's keys and values.

    q: (B, S_local, Hq, D); k, v: (B, S_local, Hkv, D), this rank's shard in the scheme's layout
    (``shard(x, group, layout=scheme)``); float32, bfloat16 or float16, all three on the same
    device. ``scheme``: a name in SCHEMES, a SchemeChoice, or "auto": the scheme
    ``choose_scheme`` last chose for this group and shape (call it first, and shard with
    ``layout=`` its result; without that call "auto" raises). ``seq_len``: the global S
    (default S_local * group size). ``ranks_per_node``: consecutive ranks sharing a node (0: all), so "tree" combines within
    nodes first and "hybrid" keeps its head groups inside one; ``ulysses_degree``: hybrid's U
    (0: the largest divisor of the node's ranks not above heads_q). ``check_finite``: fail the
    step on every rank (ValueError) when any rank's q, k, v, output gradient or computed
    gradients hold NaN or Inf; off, they go through (for loss scaling), but seqpar's CPU kernel
    may turn a NaN logit into finite wrong values rather than NaN.
    Every step also checks, on all ranks together (one small all-reduce), that each rank's
    tensors have the plan's shapes, so a bad shard fails the step everywhere instead of leaving
    the other ranks waiting.
    Returns out (B, S_local, Hq, D) in q's dtype, and with ``return_lse`` also the log-sum-exp
    lse (B, Hq, S_local), float32, natural log, without gradient.

    Collective: every rank of ``group`` (default: the world) calls it with the same shapes and
    arguments, in the same order. The first call of a shape makes a plan (collective, cached
    per group, shape, dtype and arguments; ``clear_plan_cache`` frees them); later calls only run
    it. Differentiable in q, k, v; registered as the custom op torch.ops.seqpar.attention_forward
    (with a fake implementation, so torch.compile traces through it without a graph break).
    """
    group = _group_or_world(group)
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        raise ValueError("seqpar.torch.attention: q, k, v must be 4-D (batch, seq, heads, "
                         f"head_dim); got {tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}")
    if isinstance(scheme, SchemeChoice):
        scheme, ulysses_degree = scheme.scheme, scheme.ulysses_degree or ulysses_degree
    if scheme != "auto" and scheme not in SCHEMES:
        raise ValueError(f"seqpar.torch.attention: unknown scheme {scheme!r}; expected 'auto', "
                         f"a SchemeChoice or one of {', '.join(SCHEMES)}")
    scale = float(softmax_scale) if softmax_scale is not None else 1.0 / math.sqrt(q.shape[-1])
    global_seq = int(seq_len) if seq_len is not None else q.shape[1] * dist.get_world_size(group)
    out, lse = torch.ops.seqpar.attention_forward(q, k, v, _plans.group_name(group), scheme,
                                                  causal, scale, global_seq, int(ulysses_degree),
                                                  int(ranks_per_node), bool(check_finite))
    return (out, lse) if return_lse else out


def clear_plan_cache() -> None:
    """Frees every cached plan (their workspaces). The next call of a shape makes its plan
    again, collectively: call it at the same point on every rank."""
    _plans.clear()


class SeqparAttention(torch.nn.Module):
    """Core attention over a sequence split across ``group``'s ranks, as a module: forward(q, k,
    v) with q (B, S_local, Hq, D) and k, v (B, S_local, Hkv, D) -> (B, S_local, Hq, D). No
    parameters (the projections are the caller's), like FlashAttention's and Transformer
    Engine's core attention modules."""

    def __init__(self, group: Optional[dist.ProcessGroup] = None,
                 scheme: Union[str, SchemeChoice] = "auto",
                 causal: bool = True, softmax_scale: Optional[float] = None):
        super().__init__()
        self.group = group
        self.scheme = scheme
        self.causal = causal
        self.softmax_scale = softmax_scale

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return attention(q, k, v, group=self.group, scheme=self.scheme, causal=self.causal,
                         softmax_scale=self.softmax_scale)

    def extra_repr(self) -> str:
        return f"scheme={self.scheme!r}, causal={self.causal}, softmax_scale={self.softmax_scale}"


_LAYOUT_NAMES = {"contiguous": "ring", "striped": "striped", "zigzag": "zigzag"}


def _layout_args(layout: Union[str, SchemeChoice], ulysses_degree: int,
                 heads_q: Optional[int], heads_kv: Optional[int]) -> Tuple[str, int, int, int]:
    """(scheme, U, heads_q, heads_kv) of a layout given as a layout kind, a scheme's name or a
    SchemeChoice. Only hybrid's layout depends on the heads (through U): for it they, or U, must
    be given; for the others any positive value gives the same layout."""
    if isinstance(layout, SchemeChoice):
        scheme, ulysses_degree = layout.scheme, layout.ulysses_degree or ulysses_degree
    elif layout in _LAYOUT_NAMES:
        scheme = _LAYOUT_NAMES[layout]
    elif layout in SCHEMES:
        scheme = layout
    elif layout == "auto":
        raise ValueError("seqpar.torch: 'auto' is not a layout: the choice depends on the whole "
                         "problem; pass layout=choose_scheme(seq_len, heads_q, heads_kv, "
                         "head_dim, ...) instead")
    else:
        raise ValueError(f"seqpar.torch: unknown layout {layout!r}; expected a scheme name "
                         f"({', '.join(SCHEMES)}), a SchemeChoice or one of "
                         f"{', '.join(_LAYOUT_NAMES)}")
    if scheme == "hybrid" and ulysses_degree == 0 and (heads_q is None or heads_kv is None):
        raise ValueError("seqpar.torch: the hybrid layout depends on its Ulysses degree, which "
                         "the plan picks from the heads: pass heads_q= and heads_kv= (those "
                         "attention() gets, for k and v too) or ulysses_degree=")
    return scheme, ulysses_degree, heads_q or 1, heads_kv or heads_q or 1
