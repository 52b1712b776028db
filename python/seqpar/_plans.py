"""The C++ extension (seqpar._C), the plan cache, and the custom ops torch.ops.seqpar.*.

A plan is made per (group, scheme, shape, dtype, mask, scale), collectively on the group's
ranks, and kept: a training loop makes each of its shapes' plans once and then only runs them.
"""

from __future__ import annotations

import collections
from typing import Tuple

import torch
import torch.distributed as dist

from . import _C  # the extension: plans over a c10d ProcessGroup (python/csrc/)

_DTYPES = {torch.float32: "f32", torch.bfloat16: "bf16", torch.float16: "f16"}
_MAX_PLANS = 64  # plans beyond this are dropped oldest first (each holds its workspace)
_plans: "collections.OrderedDict[tuple, object]" = collections.OrderedDict()


def group_name(group: dist.ProcessGroup) -> str:
    """The name under which c10d registers ``group`` (the extension resolves it in C++)."""
    return group.group_name


def clear() -> None:
    _plans.clear()


def dtype_name(dtype: torch.dtype) -> str:
    if dtype not in _DTYPES:
        raise ValueError(f"seqpar.torch: dtype {dtype} is not a storage dtype of seqpar (float32, "
                         "bfloat16, float16)")
    return _DTYPES[dtype]


_choices: dict = {}  # (group, problem) -> SchemeChoice, the same on every rank
# (group, layout-deciding shape) -> the latest choice for it: what scheme="auto" runs, so the
# plan and the caller's shards (layout=choose_scheme(...)) always agree.
_auto: dict = {}


def _layout_key(name: str, size: int, seq_len: int, heads_q: int, heads_kv: int, head_dim: int,
                causal: bool, ranks_per_node: int) -> tuple:
    return (name, size, seq_len, heads_q, heads_kv, head_dim, causal, ranks_per_node)


def choose_scheme(group: dist.ProcessGroup, seq_len: int, heads_q: int, heads_kv: int,
                  head_dim: int, batch: int, causal: bool, dtype: str, backward: bool,
                  ranks_per_node: int):
    """Rank 0's cost-model choice, broadcast to the group once per problem (then cached)."""
    from .torch import SchemeChoice

    size = dist.get_world_size(group)
    key = (group.group_name, size, seq_len, heads_q, heads_kv, head_dim, batch, causal, dtype,
           backward, ranks_per_node)
    if key not in _choices:
        message = [None]
        if dist.get_rank(group) == 0:
            try:  # whatever happens, rank 0 reaches the broadcast the others wait in
                message[0] = _C.choose_scheme(size, batch, seq_len, heads_q, heads_kv, head_dim,
                                              dtype, causal, backward, ranks_per_node)
            except Exception as error:  # noqa: BLE001 - reported on every rank below
                message[0] = f"{type(error).__name__}: {error}"
        dist.broadcast_object_list(message, group=group, group_src=0)
        if isinstance(message[0], str):
            raise ValueError(f"seqpar.torch.choose_scheme (rank 0): {message[0]}")
        _choices[key] = SchemeChoice(*message[0])
    choice = _choices[key]
    _auto[_layout_key(group.group_name, size, seq_len, heads_q, heads_kv, head_dim, causal,
                      ranks_per_node)] = choice
    return choice


def auto_choice(name: str, seq_len: int, heads_q: int, heads_kv: int, head_dim: int,
                causal: bool, ranks_per_node: int):
    """The choice scheme="auto" runs: the latest choose_scheme() for this group and shape."""
    size = dist.get_world_size(dist.distributed_c10d._resolve_process_group(name))
    key = _layout_key(name, size, seq_len, heads_q, heads_kv, head_dim, causal, ranks_per_node)
    if key not in _auto:
        raise ValueError(
            "seqpar.torch.attention: scheme='auto' runs the scheme seqpar.torch.choose_scheme() "
            "chose for this problem, and it has not been called for it (seq_len "
            f"{seq_len}, heads {heads_q}/{heads_kv}, head_dim {head_dim}, causal {causal}, "
            f"ranks_per_node {ranks_per_node}): call it first and shard with "
            "layout=<its result>, or pass a scheme")
    return _auto[key]


def layout_positions(scheme: str, ranks: int, rank: int, seq_len: int, heads_q: int,
                     heads_kv: int, ulysses_degree: int, ranks_per_node: int) -> torch.Tensor:
    return _C.layout_positions(scheme, ranks, rank, seq_len, heads_q, heads_kv, ulysses_degree,
                               ranks_per_node)


def _check_inputs(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
    where = "seqpar.torch.attention"
    if not (q.device == k.device == v.device):
        raise ValueError(f"{where}: q, k, v are on different devices "
                         f"({q.device}, {k.device}, {v.device})")
    if q.device.type != "cpu":
        raise NotImplementedError(
            f"{where}: {q.device.type} tensors are not supported yet; this extension runs "
            "seqpar's CPU kernels over gloo (the CUDA plans exist in libseqpar but the c10d "
            "adapter does not yet order NCCL work with torch's current stream)")
    if not (q.dtype == k.dtype == v.dtype):
        raise ValueError(f"{where}: q, k, v have different dtypes ({q.dtype}, {k.dtype}, "
                         f"{v.dtype})")
    if q.dtype not in _DTYPES:
        raise ValueError(f"{where}: dtype {q.dtype} is not a storage dtype of seqpar (float32, "
                         "bfloat16, float16); cast to float32 for full precision")
    if k.shape != v.shape:
        raise ValueError(f"{where}: k {tuple(k.shape)} and v {tuple(v.shape)} differ")
    b, s, hq, d = q.shape
    if k.shape[0] != b or k.shape[1] != s or k.shape[3] != d:
        raise ValueError(f"{where}: q {tuple(q.shape)} and k {tuple(k.shape)} disagree on batch, "
                         "local sequence or head_dim")
    if k.shape[2] == 0 or hq % k.shape[2] != 0:
        raise ValueError(f"{where}: heads_q {hq} is not a multiple of heads_kv {k.shape[2]}")


def _plan(q: torch.Tensor, k: torch.Tensor, name: str, scheme: str, causal: bool, scale: float,
          seq_len: int, ulysses_degree: int, ranks_per_node: int):
    b, _, hq, d = q.shape
    if scheme == "auto":
        choice = auto_choice(name, seq_len, hq, k.shape[2], d, causal, ranks_per_node)
        scheme, ulysses_degree = choice.scheme, ulysses_degree or choice.ulysses_degree
    # The key leaves out the local length (the plan decides it; a step checks it on every rank
    # together), so every rank finds, or misses, the same plan.
    key = (name, scheme, b, hq, k.shape[2], d, q.dtype, causal, scale, seq_len, ulysses_degree,
           ranks_per_node)
    plan = _plans.get(key)
    if plan is not None and plan.serves(name):
        _plans.move_to_end(key)
        return plan
    plan = _C.Plan(name, scheme, b, seq_len, hq, k.shape[2], d, _DTYPES[q.dtype], causal, scale,
                   ulysses_degree, ranks_per_node)  # collective
    _plans[key] = plan
    while len(_plans) > _MAX_PLANS:
        _plans.popitem(last=False)
    return plan


@torch.library.custom_op("seqpar::attention_forward", mutates_args=())
def attention_forward(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, group_name: str,
                      scheme: str, causal: bool, softmax_scale: float, seq_len: int,
                      ulysses_degree: int, ranks_per_node: int,
                      check_finite: bool) -> Tuple[torch.Tensor, torch.Tensor]:
    """out (B, S_local, Hq, D) in q's dtype, lse (B, Hq, S_local) float32."""
    _check_inputs(q, k, v)
    q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
    plan = _plan(q, k, group_name, scheme, causal, softmax_scale, seq_len, ulysses_degree,
                 ranks_per_node)
    out = torch.empty_like(q)
    lse = q.new_empty((q.shape[0], q.shape[2], q.shape[1]), dtype=torch.float32)
    plan.forward(q, k, v, out, lse, check_finite)
    return out, lse


@attention_forward.register_fake
def _(q, k, v, group_name, scheme, causal, softmax_scale, seq_len, ulysses_degree,
      ranks_per_node, check_finite):
    lse = q.new_empty((q.shape[0], q.shape[2], q.shape[1]), dtype=torch.float32)
    return torch.empty_like(q, memory_format=torch.contiguous_format), lse


@torch.library.custom_op("seqpar::attention_backward", mutates_args=())
def attention_backward(dout: torch.Tensor, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                       out: torch.Tensor, lse: torch.Tensor, group_name: str, scheme: str,
                       causal: bool, softmax_scale: float, seq_len: int, ulysses_degree: int,
                       ranks_per_node: int,
                       check_finite: bool) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """dq, dk, dv in the shapes and dtype of q, k, v."""
    _check_inputs(q, k, v)
    q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
    out, dout = out.contiguous().to(q.dtype), dout.contiguous().to(q.dtype)
    lse = lse.contiguous().to(torch.float32)
    plan = _plan(q, k, group_name, scheme, causal, softmax_scale, seq_len, ulysses_degree,
                 ranks_per_node)
    dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
    plan.backward(q, k, v, out, lse, dout, dq, dk, dv, check_finite)
    return dq, dk, dv


@attention_backward.register_fake
def _(dout, q, k, v, out, lse, group_name, scheme, causal, softmax_scale, seq_len,
      ulysses_degree, ranks_per_node, check_finite):
    return (torch.empty_like(q, memory_format=torch.contiguous_format),
            torch.empty_like(k, memory_format=torch.contiguous_format),
            torch.empty_like(v, memory_format=torch.contiguous_format))


def _setup_context(ctx, inputs, output):
    q, k, v = inputs[:3]
    out, lse = output
    ctx.save_for_backward(q, k, v, out, lse)
    ctx.args = inputs[3:]  # group_name, scheme, ..., ranks_per_node, check_finite
    ctx.mark_non_differentiable(lse)


def _backward(ctx, dout, _dlse):
    q, k, v, out, lse = ctx.saved_tensors
    dq, dk, dv = attention_backward(dout, q, k, v, out, lse, *ctx.args)
    return (dq, dk, dv) + (None,) * len(ctx.args)


attention_forward.register_autograd(_backward, setup_context=_setup_context)
