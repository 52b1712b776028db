#!/usr/bin/env python3
"""seqpar (through the PyTorch extension) beside PyTorch's own context parallelism, on one CPU
machine, on the same problem: fwd+bwd step time and error against an fp64 reference.

Run under torchrun (gloo, CPU tensors):

    PYTHONPATH=python torchrun --standalone --nproc-per-node 2 benchmarks/torch_cp_compare.py
    benchmarks/torch_cp_compare.sh          # P = 2 and 4, then the README's markdown table

The peers, each given the same global problem (seeded, built whole on every rank) sharded in its
own layout, each timed on a fwd+bwd step (out.backward(dout) with a fixed random dout):

  seqpar      seqpar.torch.attention(q, k, v, scheme="zigzag", causal=True) on
              seqpar.torch.shard(x, layout="zigzag"); tensors (B, S/P, H, D).
  torch_ring  PyTorch's ring engine behind context_parallel: _templated_ring_attention and
              _templated_ring_attention_backward (torch.distributed.tensor.experimental.
              _context_parallel._attention) over torch's CPU flash ops
              aten._scaled_dot_product_flash_attention_for_cpu(_backward), wrapped in an
              autograd.Function; tensors (B, H, S/P, D). The public context_parallel() context
              manager itself refuses CPU tensors in torch 2.15 (no DTensor sharding strategy for
              the CPU flash op), so this is the engine it would run, called directly. Configs
              "<rotate>:<lb|nolb>": rotate method "allgather" or "alltoall" (set_rotate_method;
              the backward always rotates dK/dV with all-to-all), and _cp_options.
              enable_load_balance with torch's own head-tail layout (its _HeadTailLoadBalancer:
              rank r holds chunks r and 2P-1-r of 2P, the same tokens as seqpar's zigzag) or
              without it on the contiguous layout. convert_to_f32 = True (torch's default).
  p2p_ring    a plain zigzag ring written here with dist.batch_isend_irecv over the same CPU
              flash ops (K/V to the next rank while computing, dK/dV carried around the ring and
              home after the last step), same head-tail layout.

GQA: torch's CPU flash ops take Hkv < Hq themselves (checked against the fp64 reference in every
run), so no peer repeats K/V heads: all send Hkv heads.

Threads: each rank runs torch.set_num_threads(max(1, cores // P)) (cores = CPUs this process may
run on); with P > cores the ranks oversubscribe the cores (P = 4 on a 2-core machine: 4 ranks, 1
thread each, on 2 cores). seqpar's extension runs its kernels in the calling thread.

Timing: every peer does --warmup untimed steps, then --steps timed rounds, each round one step of
every peer in turn (interleaved, so load drift hits all alike); a step is timed on rank 0 between
two dist.barrier() calls (wall clock, so it is the slowest rank's step). Reported: median and min.

Errors: the out and dq, dk, dv of one extra step, gathered to the whole sequence, against
F.scaled_dot_product_attention(is_causal=True, enable_gqa=True) in float64 of the same (fp32)
inputs, computed once on rank 0. abs = max |x - ref|; rel = max |x - ref| / max |ref| (per tensor).

Load: the record keeps the load average before and after, the cores that other processes kept
busy during the timed steps (/proc/stat busy time less these ranks' CPU time, over the wall time),
and per peer the cores its ranks used during its steps (their CPU time over its wall time).

Writes benchmarks/results/torch_cp_cpu_<date>_p<P>.json and a table to stdout (rank 0).
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import statistics
import subprocess
import sys
import time

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.distributed.tensor.experimental._context_parallel import _attention as cp_attn
from torch.distributed.tensor.experimental._context_parallel._load_balancer import (
    _HeadTailLoadBalancer,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLASH_FWD = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu.default
FLASH_BWD = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward.default


# ---------------------------------------------------------------------------------------------
# Layouts: the global positions (int64, local order) rank r holds.

def zigzag_positions(seq: int, ranks: int, rank: int) -> torch.Tensor:
    """torch's head-tail layout, from torch's own load balancer."""
    idx = _HeadTailLoadBalancer(seq, ranks, "cpu")._generate_indices()[0].long()
    n = seq // ranks
    return idx[rank * n:(rank + 1) * n]


def contiguous_positions(seq: int, ranks: int, rank: int) -> torch.Tensor:
    n = seq // ranks
    return torch.arange(rank * n, (rank + 1) * n)


def gather_seq(local: torch.Tensor, positions, seq: int, seq_dim: int) -> torch.Tensor:
    """The global tensor (on every rank) from every rank's shard; positions(r) = rank r's."""
    size = dist.get_world_size()
    local = local.detach().movedim(seq_dim, 0).contiguous()
    parts = [torch.empty_like(local) for _ in range(size)]
    dist.all_gather(parts, local)
    out = local.new_empty((seq,) + tuple(local.shape[1:]))
    for r in range(size):
        out.index_copy_(0, positions(r), parts[r])
    return out.movedim(0, seq_dim)


# ---------------------------------------------------------------------------------------------
# Peer: PyTorch's ring engine (the one context_parallel runs) over the CPU flash ops.

class TorchRingAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, scale):  # (B, H, S_local, D)
        group = dist.group.WORLD
        out, lse = cp_attn._templated_ring_attention(group, 2, FLASH_FWD, q, k, v,
                                                     is_causal=True, scale=scale)
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.scale = scale
        return out

    @staticmethod
    def backward(ctx, dout):
        q, k, v, out, lse = ctx.saved_tensors
        dq, dk, dv = cp_attn._templated_ring_attention_backward(
            dist.group.WORLD, 2, FLASH_BWD, dout, "grad_out", q, k, v, out, lse,
            is_causal=True, dropout_p=0.0, scale=ctx.scale)[:3]
        return dq, dk, dv, None


def set_torch_config(config: str) -> None:
    rotate, lb = config.split(":")
    cp_attn.set_rotate_method(rotate)
    cp_attn._cp_options.enable_load_balance = lb == "lb"
    cp_attn._cp_options.convert_to_f32 = True


# ---------------------------------------------------------------------------------------------
# Peer: a plain zigzag ring with batch_isend_irecv over the CPU flash ops. Rank r holds zigzag
# chunks (r, 2P-1-r); K/V from source s = r - i (mod P) at step i: i = 0 causal on everything,
# s < r all of q against s's first chunk, s > r q's second chunk against all of s's K/V.

def _exchange(sends, recvs):
    size, rank = dist.get_world_size(), dist.get_rank()
    ops = [dist.P2POp(dist.isend, t, (rank + 1) % size) for t in sends]
    ops += [dist.P2POp(dist.irecv, t, (rank - 1) % size) for t in recvs]
    return dist.batch_isend_irecv(ops)


def _wait(reqs):
    for req in reqs:
        req.wait()


def _merge(out, lse, block_out, block_lse):
    """In place: (out, lse) <- the softmax merge of (out, lse) and a block's (out, lse)."""
    new_lse = torch.logaddexp(lse, block_lse)
    out.mul_(torch.exp(lse - new_lse).unsqueeze(-1)).add_(
        block_out * torch.exp(block_lse - new_lse).unsqueeze(-1))
    lse.copy_(new_lse)


class P2PRingAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, scale):  # (B, H, S_local, D), zigzag layout, causal
        size, rank = dist.get_world_size(), dist.get_rank()
        half = q.shape[2] // 2
        cur_k, cur_v = k.contiguous(), v.contiguous()
        if size > 1:  # K/V on to the next rank while computing on them
            nk, nv = torch.empty_like(cur_k), torch.empty_like(cur_v)
            reqs = _exchange([cur_k, cur_v], [nk, nv])
        out, lse = FLASH_FWD(q, cur_k, cur_v, 0.0, True, scale=scale)
        out, lse = out.float(), lse.float().contiguous()
        for i in range(1, size):
            _wait(reqs)
            cur_k, cur_v = nk, nv
            if i < size - 1:
                nk, nv = torch.empty_like(cur_k), torch.empty_like(cur_v)
                reqs = _exchange([cur_k, cur_v], [nk, nv])
            if (rank - i) % size < rank:  # all of q against the source's first chunk
                bo, bl = FLASH_FWD(q, cur_k[:, :, :half], cur_v[:, :, :half], 0.0, False,
                                   scale=scale)
                _merge(out, lse, bo, bl)
            else:  # q's second chunk against all of the source's K/V
                bo, bl = FLASH_FWD(q[:, :, half:], cur_k, cur_v, 0.0, False, scale=scale)
                _merge(out[:, :, half:], lse[:, :, half:], bo, bl)
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.scale = scale
        return out.to(q.dtype)

    @staticmethod
    def backward(ctx, dout):
        q, k, v, out, lse = ctx.saved_tensors
        scale = ctx.scale
        size, rank = dist.get_world_size(), dist.get_rank()
        half = q.shape[2] // 2
        dout, out = dout.contiguous(), out.to(q.dtype)
        dq = torch.zeros_like(q, dtype=torch.float32)
        cur_k, cur_v = k.contiguous(), v.contiguous()
        dk_acc = torch.zeros_like(k, dtype=torch.float32)
        dv_acc = torch.zeros_like(v, dtype=torch.float32)
        q2, out2, dout2 = q[:, :, half:], out[:, :, half:], dout[:, :, half:]
        lse2 = lse[:, :, half:].contiguous()
        for i in range(size):
            if i < size - 1:  # K/V on to the next rank while computing on them
                nk, nv = torch.empty_like(cur_k), torch.empty_like(cur_v)
                kv_reqs = _exchange([cur_k, cur_v], [nk, nv])
            src = (rank - i) % size
            if i == 0:
                gq, gk, gv = FLASH_BWD(dout, q, cur_k, cur_v, out, lse, 0.0, True, scale=scale)
                dq += gq
                dk_acc += gk
                dv_acc += gv
            elif src < rank:
                gq, gk, gv = FLASH_BWD(dout, q, cur_k[:, :, :half], cur_v[:, :, :half], out, lse,
                                       0.0, False, scale=scale)
                dq += gq
                dk_acc[:, :, :half] += gk
                dv_acc[:, :, :half] += gv
            else:
                gq, gk, gv = FLASH_BWD(dout2, q2, cur_k, cur_v, out2, lse2, 0.0, False,
                                       scale=scale)
                dq[:, :, half:] += gq
                dk_acc += gk
                dv_acc += gv
            # dK/dV of the block travel with it; after the last step they go home (src + P)
            ndk, ndv = torch.empty_like(dk_acc), torch.empty_like(dv_acc)
            dkv_reqs = _exchange([dk_acc, dv_acc], [ndk, ndv])
            if i < size - 1:
                _wait(kv_reqs)
                cur_k, cur_v = nk, nv
            _wait(dkv_reqs)
            dk_acc, dv_acc = ndk, ndv
        return dq.to(q.dtype), dk_acc.to(k.dtype), dv_acc.to(v.dtype), None


# ---------------------------------------------------------------------------------------------

class Peer:
    """One peer's shards, step and gather. layout: (B, S, H, D) for seqpar, (B, H, S, D) else."""

    def __init__(self, name, config, fn, positions, seq_dim, q, k, v, dout, setup=None):
        self.name, self.config, self.fn, self.positions = name, config, fn, positions
        self.seq_dim, self.setup = seq_dim, setup or (lambda: None)
        rank = dist.get_rank()
        idx = positions(rank)
        perm = (lambda t: t) if seq_dim == 1 else (lambda t: t.transpose(1, 2))
        self.q, self.k, self.v, self.dout = [
            perm(t).index_select(seq_dim, idx).contiguous().requires_grad_(t is not dout)
            for t in (q, k, v, dout)]
        self.dout.requires_grad_(False)
        self.times = []

    def step(self):
        self.setup()
        for t in (self.q, self.k, self.v):
            t.grad = None
        out = self.fn(self.q, self.k, self.v)
        out.backward(self.dout)
        return out

    def results(self, seq):
        """out, dq, dk, dv on the whole sequence, (B, S, H, D), on every rank."""
        out = self.step()
        res = []
        for t in (out, self.q.grad, self.k.grad, self.v.grad):
            g = gather_seq(t, self.positions, seq, self.seq_dim)
            res.append(g if self.seq_dim == 1 else g.transpose(1, 2))
        return res


def reference(q, k, v, dout, threads):
    """fp64 SDPA (causal, GQA) of the fp32 inputs: out, dq, dk, dv as (B, S, H, D)."""
    saved = torch.get_num_threads()
    torch.set_num_threads(threads)
    q64, k64, v64 = [t.double().transpose(1, 2).requires_grad_() for t in (q, k, v)]
    out = F.scaled_dot_product_attention(q64, k64, v64, is_causal=True, enable_gqa=True)
    out.backward(dout.double().transpose(1, 2))
    res = [t.detach().transpose(1, 2).contiguous() for t in (out, q64.grad, k64.grad, v64.grad)]
    torch.set_num_threads(saved)
    return res


def errors(res, ref):
    e = {}
    for name, x, r in zip(("out", "dq", "dk", "dv"), res, ref):
        diff = (x.double() - r).abs().max().item()
        e[name] = {"abs": diff, "rel": diff / max(r.abs().max().item(), 1e-300)}
    return e


def busy_seconds():
    """CPU seconds the whole machine has spent busy (all processes), from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def machine():
    model = ""
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    date = subprocess.run(["date", "-u"], capture_output=True, text=True).stdout.strip()
    try:
        commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True).stdout.strip()
    except OSError:
        commit = ""
    return {"cpu": model, "cores": len(os.sched_getaffinity(0)), "date": date,
            "commit": commit, "torch": torch.__version__,
            "python": sys.version.split()[0]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--seq", type=int, default=4096)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--head-dim", type=int, default=64)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--steps", type=int, default=7)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--peers", default="seqpar,torch_ring,p2p_ring")
    ap.add_argument("--torch-configs",
                    default="allgather:lb,alltoall:lb,allgather:nolb,alltoall:nolb",
                    help="torch_ring configs, <allgather|alltoall>:<lb|nolb>, comma-separated; "
                         "the fastest is the peer of the ratio")
    ap.add_argument("--out-dir", default=os.path.join(ROOT, "benchmarks", "results"))
    ap.add_argument("--no-write", action="store_true", help="print only (trial runs)")
    args = ap.parse_args()

    dist.init_process_group("gloo")
    rank, size = dist.get_rank(), dist.get_world_size()
    cores = len(os.sched_getaffinity(0))
    threads = max(1, cores // size)
    torch.set_num_threads(threads)
    load_before = os.getloadavg()

    B, S, Hq, Hkv, D = args.batch, args.seq, args.heads, args.kv_heads, args.head_dim
    if S % (2 * size):
        raise SystemExit(f"S = {S} must be a multiple of 2P = {2 * size} (zigzag)")
    scale = 1.0 / math.sqrt(D)
    gen = torch.Generator().manual_seed(args.seed)
    q = torch.randn(B, S, Hq, D, generator=gen)
    k = torch.randn(B, S, Hkv, D, generator=gen)
    v = torch.randn(B, S, Hkv, D, generator=gen)
    dout = torch.randn(B, S, Hq, D, generator=gen)

    peers = []
    wanted = args.peers.split(",")
    if "seqpar" in wanted:
        try:
            import seqpar.torch as spt
        except ImportError as e:
            raise SystemExit(f"seqpar.torch does not import ({e}); set PYTHONPATH=python and "
                             "build the extension, or drop seqpar from --peers")
        zz = lambda r: spt.positions(S, layout="zigzag", rank=r)
        # seqpar's zigzag and torch's head-tail layout are the same tokens (checked here)
        if not all(torch.equal(zz(r), zigzag_positions(S, size, r)) for r in range(size)):
            raise SystemExit("seqpar's zigzag layout differs from torch's head-tail layout")
        sp = Peer("seqpar", "scheme=zigzag",
                  lambda a, b, c: spt.attention(a, b, c, scheme="zigzag", causal=True),
                  zz, 1, q, k, v, dout)
        # shard() must give the same shards as the positions
        assert torch.equal(sp.q.detach(), spt.shard(q, layout="zigzag"))
        peers.append(sp)
    if "torch_ring" in wanted:
        for config in args.torch_configs.split(","):
            lb = config.endswith(":lb")
            pos = (lambda r: zigzag_positions(S, size, r)) if lb else \
                (lambda r: contiguous_positions(S, size, r))
            peers.append(Peer("torch_ring", config,
                              lambda a, b, c: TorchRingAttention.apply(a, b, c, scale),
                              pos, 2, q, k, v, dout,
                              setup=(lambda c=config: set_torch_config(c))))
    if "p2p_ring" in wanted:
        peers.append(Peer("p2p_ring", "batch_isend_irecv, zigzag",
                          lambda a, b, c: P2PRingAttention.apply(a, b, c, scale),
                          lambda r: zigzag_positions(S, size, r), 2, q, k, v, dout))

    # errors first (one step each), reference on rank 0
    ref = reference(q, k, v, dout, cores) if rank == 0 else None
    dist.barrier()
    errs = {}
    for p in peers:
        res = p.results(S)
        if rank == 0:
            errs[(p.name, p.config)] = errors(res, ref)
    del ref

    for p in peers:
        for _ in range(args.warmup):
            p.step()
    cpu = torch.zeros(len(peers), dtype=torch.float64)  # this process's CPU s per peer
    dist.barrier()
    busy0, wall0, own0 = busy_seconds(), time.perf_counter(), time.process_time()
    for _ in range(args.steps):
        for i, p in enumerate(peers):
            dist.barrier()
            t0, c0 = time.perf_counter(), time.process_time()
            p.step()
            dist.barrier()
            p.times.append((time.perf_counter() - t0) * 1e3)
            cpu[i] += time.process_time() - c0
    busy, wall = busy_seconds() - busy0, time.perf_counter() - wall0
    own = time.process_time() - own0
    load_after = os.getloadavg()
    own = torch.tensor([own], dtype=torch.float64)
    dist.all_reduce(cpu)
    dist.all_reduce(own)
    # cores busy with anything but these ranks during the timed steps (other jobs' load)
    others = max(0.0, (busy - own.item()) / wall)

    if rank != 0:
        dist.destroy_process_group()
        return
    rows = []
    for p in peers:
        rows.append({"peer": p.name, "config": p.config,
                     "median_ms": statistics.median(p.times), "min_ms": min(p.times),
                     "times_ms": p.times, "errors": errs[(p.name, p.config)],
                     "cpu_cores_used": cpu[peers.index(p)].item() / (sum(p.times) / 1e3)})
        if p.name == "torch_ring":
            rows[-1]["rotate_method"], lb = p.config.split(":")
            rows[-1]["load_balance"] = lb == "lb"
            rows[-1]["layout"] = "head-tail (zigzag)" if lb == "lb" else "contiguous"
        else:
            rows[-1]["layout"] = "zigzag"
    by = lambda name: [r for r in rows if r["peer"] == name]
    ratios = {}
    if by("seqpar"):
        base = by("seqpar")[0]["median_ms"]
        for name in ("torch_ring", "p2p_ring"):
            if by(name):
                best = min(by(name), key=lambda r: r["median_ms"])
                ratios[name] = {"config": best["config"], "ratio_median": best["median_ms"] / base,
                                "ratio_min": best["min_ms"] / by("seqpar")[0]["min_ms"]}
    record = {
        "what": "fwd+bwd causal attention step, seqpar vs PyTorch context parallelism's ring "
                "engine (and a batch_isend_irecv ring) over torch's CPU flash ops, gloo, "
                "benchmarks/torch_cp_compare.py",
        "machine": machine(), "ranks": size, "threads_per_rank": threads,
        "load_avg_before": load_before, "load_avg_after": load_after,
        "other_load_cores": others,
        "problem": {"batch": B, "seq": S, "heads_q": Hq, "heads_kv": Hkv, "head_dim": D,
                    "mask": "causal", "dtype": "fp32", "seed": args.seed},
        "timing": {"warmup": args.warmup, "steps": args.steps,
                   "how": "rank 0 wall clock between dist.barrier() calls, peers interleaved"},
        "error": "max |x - ref| and that over max |ref|; ref = fp64 SDPA (causal, enable_gqa) "
                 "of the same fp32 inputs",
        "rows": rows, "ratio_torch_over_seqpar": ratios,
    }
    print(f"P = {size}, {threads} thread(s)/rank, {cores} cores ({record['machine']['cpu']}), "
          f"torch {torch.__version__}; B={B} S={S} Hq={Hq} Hkv={Hkv} D={D} causal fp32 fwd+bwd; "
          f"load avg {load_before[0]:.2f} before, {load_after[0]:.2f} after; other processes "
          f"kept {others:.2f} cores busy during the timed steps")
    print(f"{'peer':<11} {'config':<26} {'median ms':>10} {'min ms':>9} {'cores':>6}   "
          f"max rel err out / dq / dk / dv")
    for r in rows:
        e = r["errors"]
        print(f"{r['peer']:<11} {r['config']:<26} {r['median_ms']:10.1f} {r['min_ms']:9.1f} "
              f"{r['cpu_cores_used']:6.2f}   "
              + " / ".join(f"{e[n]['rel']:.1e}" for n in ("out", "dq", "dk", "dv")))
    for name, rt in ratios.items():
        print(f"{name} ({rt['config']}) / seqpar: {rt['ratio_median']:.2f}x (median), "
              f"{rt['ratio_min']:.2f}x (min)")
    if not args.no_write:
        os.makedirs(args.out_dir, exist_ok=True)
        day = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
        path = os.path.join(args.out_dir, f"torch_cp_cpu_{day}_p{size}.json")
        with open(path, "w") as f:
            json.dump(record, f, indent=1)
            f.write("\n")
        print(f"wrote {path}")
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
