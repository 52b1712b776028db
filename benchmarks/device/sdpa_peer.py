#!/usr/bin/env python3
"""Peer timings for benchmarks/device/round.sh: torch.nn.functional.scaled_dot_product_attention
under sdpa_kernel(FLASH_ATTENTION) and sdpa_kernel(CUDNN_ATTENTION), the same shapes and timing
method as seqpar-bench --device cuda (CUDA events around each run, median after warm-up;
backward timed alone with retain_graph). FLOPs: forward 4*B*H*S*S*D, halved for causal;
backward 2.5x forward. One JSON object per line on stdout; a backend that fails on a shape gives
a line with "error" instead of times."""
import argparse
import json
import statistics
import sys

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

BACKENDS = {"flash": SDPBackend.FLASH_ATTENTION, "cudnn": SDPBackend.CUDNN_ATTENTION}


def median_ms(fn, iters, warmup):
    for _ in range(warmup):
        fn()
    start = torch.cuda.Event(enable_timing=True)
    stop = torch.cuda.Event(enable_timing=True)
    times = []
    for _ in range(iters):
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop))
    return statistics.median(times)


def bench(backend, batch, seq, heads, head_dim, causal, iters, warmup):
    gen = torch.Generator(device="cuda").manual_seed(2024)
    shape = (batch, heads, seq, head_dim)  # SDPA layout (B, H, S, D)

    def rand():
        return (torch.rand(shape, device="cuda", generator=gen, dtype=torch.float32) * 2 - 1).to(
            torch.bfloat16)

    q, k, v, dout = rand(), rand(), rand(), rand()
    q.requires_grad_(True)
    k.requires_grad_(True)
    v.requires_grad_(True)
    scale = head_dim ** -0.5
    with sdpa_kernel(BACKENDS[backend]):
        def forward():
            with torch.no_grad():
                return F.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=scale)

        fwd_ms = median_ms(forward, iters, warmup)
        out = F.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=scale)

        def backward():
            torch.autograd.grad(out, (q, k, v), dout, retain_graph=True)

        bwd_ms = median_ms(backward, iters, warmup)
    return fwd_ms, bwd_ms


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seqs", default="1024,2048,4096,8192,16384,32768")
    ap.add_argument("--tokens", type=int, default=16384, help="batch = max(1, tokens // seq)")
    ap.add_argument("--hidden", type=int, default=2048, help="heads = hidden // head_dim")
    ap.add_argument("--head-dims", default="64,128")
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("sdpa_peer.py: torch sees no CUDA device", file=sys.stderr)
        return 1
    gpu = torch.cuda.get_device_name()
    meta = {"torch": torch.__version__, "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version()}
    for head_dim in [int(d) for d in args.head_dims.split(",")]:
        heads = args.hidden // head_dim
        for causal in (False, True):
            for seq in [int(s) for s in args.seqs.split(",")]:
                batch = max(1, args.tokens // seq)
                flop = 4.0 * batch * heads * seq * seq * head_dim * (0.5 if causal else 1.0)
                for backend in BACKENDS:
                    row = {"impl": "torch-sdpa-" + backend, "gpu": gpu, "batch": batch,
                           "seq": seq, "heads": heads, "kv_heads": heads, "head_dim": head_dim,
                           "dtype": "bf16", "mask": "causal" if causal else "full",
                           "iters": args.iters, "warmup": args.warmup, **meta}
                    try:
                        fwd_ms, bwd_ms = bench(backend, batch, seq, heads, head_dim, causal,
                                               args.iters, args.warmup)
                        row.update(fwd_ms=round(fwd_ms, 4), bwd_ms=round(bwd_ms, 4),
                                   fwd_tflops=round(flop / (fwd_ms * 1e9), 2),
                                   bwd_tflops=round(2.5 * flop / (bwd_ms * 1e9), 2))
                    except Exception as e:  # a backend that refuses a shape: say so, go on
                        row["error"] = f"{type(e).__name__}: {e}"[:300]
                    print(json.dumps(row), flush=True)
                    torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    sys.exit(main())
