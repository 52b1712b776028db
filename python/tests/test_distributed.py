"""Distributed tests of seqpar.torch on CPU tensors over gloo. Run under torchrun:

    torchrun --standalone --nproc-per-node 2 python/tests/test_distributed.py   # and 4

(run_torchrun_tests.sh runs both). Every rank runs every test; after each test the ranks agree
on its verdict (a failure on any rank fails it everywhere) and rank 0 prints one line per test
and a summary. The exit code is 1 when anything failed.

What is checked:
  * attention forward (out, lse) and backward (dq, dk, dv) of every scheme, causal and full,
    fp32 and bf16, MHA and GQA, against torch's scaled_dot_product_attention in float64 on the
    gathered sequence; a configuration a scheme refuses must be refused with a clear error that
    a rule below (REFUSALS) expects;
  * that the tolerances are tight enough: a wrong mask or one missing block of keys fails them;
  * a non-default softmax_scale, uneven shards (seq_len not divisible by the ranks);
  * a small model (projections around the attention) trained a few steps with SGD and AdamW
    equals the single-process run;
  * torch.compile (fullgraph, aot_eager) and torch.library.opcheck of the custom op;
  * the error paths (bad dtype, shapes, heads, scheme, shard length, no process group).

Environment: SEQPAR_TEST_SEED replays a run (its seed is printed); SEQPAR_TEST_FILTER runs only
the tests whose names contain one of its comma-separated substrings.
"""

import datetime
import math
import os
import re
import sys
import time
import traceback
import zlib

import torch
import torch.distributed as dist
import torch.nn.functional as F

import seqpar.torch as spt

B, S, D = 2, 64, 32  # S is divisible by 2P for P = 2 and 4 (zigzag, hybrid)
HEADS = [(4, 4), (4, 2), (4, 1)]  # (heads_q, heads_kv): MHA and two GQA ratios
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}

# Largest allowed error per quantity: max |got - ref| / max |ref| for out, dq, dk, dv, and the
# absolute error for lse (natural log; its values are about log S). The fp64 reference sees the
# same rounded inputs, so the errors are seqpar's own: fp32 ones are rounding in fp32 (measured
# at most 1.7e-6 over 2 and 4 ranks), bf16 ones mostly the rounding of out and the gradients to
# bf16 (measured at most 6.4e-3; lse stays fp32, 8e-7). The self-check tests show that a wrong
# mask or a single missing block of S/(2P) keys exceeds these 25x or more even in bf16.
TOLERANCES = {
    torch.float32: {"out": 1e-5, "lse": 1e-5, "dq": 1e-5, "dk": 1e-5, "dv": 1e-5},
    torch.bfloat16: {"out": 1.5e-2, "lse": 1e-5, "dq": 2e-2, "dk": 2e-2, "dv": 2e-2},
}
MODEL_RTOL = 1e-4  # the small model in fp32: losses, gradients and parameters after the steps
# AdamW's step is grad / sqrt(v): an element whose gradient is near rounding level (1e-8) moves by
# a sizeable part of lr either way, so its parameters after the steps are held to a looser bound
# than the gradients that drove them (4-rank runs measured up to 3.6e-5).
ADAMW_PARAM_RTOL = 1e-3

# Configurations a scheme refuses, as (rule, predicate, a regular expression the error message
# must match). A refusal no rule expects is a failure, and so is a configuration a rule expects
# to be refused that runs.
REFUSALS = [
    ("lightseq balances causal work: it needs the causal mask",
     lambda scheme, ranks, causal, hq, hkv, seq, grid: scheme == "lightseq" and not causal,
     r"causal"),
    ("ulysses gives every rank whole query heads: it needs heads_q >= ranks",
     lambda scheme, ranks, causal, hq, hkv, seq, grid: scheme == "ulysses" and hq < ranks,
     r"at least as many query heads"),
    ("hybrid's Ulysses degree U (its head groups' size) must not exceed heads_q",
     lambda scheme, ranks, causal, hq, hkv, seq, grid:
         scheme == "hybrid" and grid.get("ulysses_degree", 0) > hq,
     r"at least as many query heads"),
]


class Refused(Exception):
    """A configuration refused as a rule in REFUSALS expects (the test passes)."""


# ---------------------------------------------------------------------------------------------
# the harness

def rank() -> int:
    return dist.get_rank()


def world() -> int:
    return dist.get_world_size()


def generator(seed: int, name: str) -> torch.Generator:
    """A generator for test ``name``, the same on every rank (and in a replay with the seed)."""
    return torch.Generator().manual_seed((seed * 1000003 + zlib.crc32(name.encode())) % 2**63)


def run_tests(tests, seed):
    """Runs ``tests`` [(name, fn(seed) -> detail)] on every rank; returns (failed, refused)."""
    failed = refused = 0
    for name, fn in tests:
        start = time.perf_counter()
        status, detail = "pass", ""
        try:
            detail = fn(seed) or ""
        except Refused as e:
            detail = f"refused: {e}"
            refused += 1
        except Exception as e:  # noqa: BLE001 - every failure is reported, none stops the run
            first = (str(e).strip().splitlines() or [""])[0][:300]
            status, detail = "FAIL", f"{type(e).__name__}: {first}"
            print(f"[rank {rank()}] {name} failed:\n{traceback.format_exc(limit=-4)}",
                  file=sys.stderr, flush=True)
        flag = torch.tensor([1 if status == "FAIL" else 0])
        try:
            dist.all_reduce(flag)  # every rank learns whether any rank failed
        except Exception as e:  # noqa: BLE001 - the ranks are out of step: stop here
            print(f"[rank {rank()}] FAIL {name}: the ranks lost step ({detail}); the verdict "
                  f"exchange failed: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
            raise SystemExit(1) from None
        if flag.item() > 0:
            verdicts = [None] * world()
            dist.all_gather_object(verdicts, (status, detail))
            failing = [r for r, (s, _) in enumerate(verdicts) if s == "FAIL"]
            # the first failing rank's message (every rank's traceback is on stderr)
            status, detail = "FAIL", (f"rank {failing[0]}: {verdicts[failing[0]][1]} (failed "
                                      f"on ranks {','.join(map(str, failing))})")
            failed += 1
        spt.clear_plan_cache()  # at the same point on every rank
        if rank() == 0:
            print(f"{status:4}  {name:<44} {detail}  [{time.perf_counter() - start:.2f}s]",
                  flush=True)
    return failed, refused


def selected(tests):
    """The tests SEQPAR_TEST_FILTER selects (all without it)."""
    wanted = [w for w in os.environ.get("SEQPAR_TEST_FILTER", "").split(",") if w]
    return [t for t in tests if not wanted or any(w in t[0] for w in wanted)]


# ---------------------------------------------------------------------------------------------
# attention against the fp64 reference

class Problem:
    """Global q, k, v, dout (B, S, H, D) in ``dtype``, the same on every rank."""

    def __init__(self, gen, dtype, hq, hkv, seq=S, head_dim=D):
        def draw(heads):
            return torch.randn(B, seq, heads, head_dim, generator=gen).to(dtype)
        self.q, self.k, self.v, self.dout = draw(hq), draw(hkv), draw(hkv), draw(hq)
        self.dtype, self.hq, self.hkv, self.seq = dtype, hq, hkv, seq


def reference(p: Problem, causal: bool, scale=None, drop_keys=None):
    """SDPA in float64 on the whole sequence (enable_gqa), with autograd for the gradients.
    ``drop_keys``: global key positions masked out for every query (a deliberately wrong
    reference for the self-checks). Returns out, dq, dk, dv (B, S, H, D) and lse (B, Hq, S)."""
    q, k, v = (t.detach().double().transpose(1, 2).requires_grad_() for t in (p.q, p.k, p.v))
    allowed = torch.ones(p.seq, p.seq, dtype=torch.bool)
    if causal:
        allowed = allowed.tril()
    if drop_keys is not None:
        allowed[:, drop_keys] = False
    mask = None if drop_keys is None else allowed
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                         is_causal=causal and mask is None, scale=scale,
                                         enable_gqa=True)
    out.backward(p.dout.double().transpose(1, 2))
    scale = scale if scale is not None else 1.0 / math.sqrt(q.shape[-1])
    keys = k.detach().repeat_interleave(p.hq // p.hkv, dim=1)
    scores = (q.detach() @ keys.transpose(-1, -2)) * scale
    lse = scores.masked_fill(~allowed, float("-inf")).logsumexp(-1)
    grads = [t.grad.transpose(1, 2) for t in (q, k, v)]
    return {"out": out.detach().transpose(1, 2), "lse": lse,
            "dq": grads[0], "dk": grads[1], "dv": grads[2]}


def run_seqpar(p: Problem, scheme, causal: bool, scale=None, seq_len=None, layout=None, **grid):
    """Shards p, runs seqpar's forward and backward, and gathers out, lse, dq, dk, dv.
    ``grid``: ulysses_degree / ranks_per_node, passed to shard, attention and unshard;
    ``layout``: the shards' layout when it is not ``scheme``'s (scheme "auto")."""
    layout = dict(layout=layout or scheme, heads_q=p.hq, heads_kv=p.hkv, **grid)
    q, k, v = (spt.shard(t, **layout).requires_grad_() for t in (p.q, p.k, p.v))
    out, lse = spt.attention(q, k, v, scheme=scheme, causal=causal, softmax_scale=scale,
                             return_lse=True, seq_len=seq_len, **grid)
    if out.dtype != p.dtype or lse.dtype != torch.float32 or lse.shape != (
            q.shape[0], q.shape[2], q.shape[1]):
        raise AssertionError(f"out {out.dtype} {tuple(out.shape)}, lse {lse.dtype} "
                             f"{tuple(lse.shape)}: not q's dtype / (B, Hq, S_local) float32")
    out.backward(spt.shard(p.dout, **layout))

    def gather(t, seq_dim=1):
        return spt.unshard(t, seq_dim=seq_dim, seq_len=p.seq, **layout)
    return {"out": gather(out), "lse": gather(lse, 2), "dq": gather(q.grad),
            "dk": gather(k.grad), "dv": gather(v.grad)}


def errors(got, ref):
    """Max error per quantity: relative to the reference's max for tensors, absolute for lse."""
    result = {}
    for key, r in ref.items():
        diff = (got[key].double() - r).abs().max().item()
        result[key] = diff if key == "lse" else diff / r.abs().max().item()
    return result


MEASURED = {}  # (dtype, quantity) -> the largest error seen in passing attention tests


def check(errs, dtype):
    """Raises unless every error is within its tolerance; returns the line's detail."""
    tol = TOLERANCES[dtype]
    bad = [k for k, e in errs.items() if not e <= tol[k]]  # NaN fails too
    detail = " ".join(f"{k} {e:.1e}" for k, e in errs.items())
    detail += "  (tol " + " ".join(f"{k} {tol[k]:.2g}" for k in errs) + ")"
    if bad:
        raise AssertionError(f"{', '.join(bad)} above tolerance: {detail}")
    for k, e in errs.items():
        MEASURED[(dtype, k)] = max(MEASURED.get((dtype, k), 0.0), e)
    return detail


def expected_refusal(scheme, causal, hq, hkv, seq, grid):
    for rule, applies, pattern in REFUSALS:
        if applies(scheme, world(), causal, hq, hkv, seq, grid):
            return rule, pattern
    return None


def attention_case(p, scheme, causal, ref, scale=None, seq_len=None, **grid):
    """Runs one configuration and compares it with ``ref``; handles expected refusals."""
    rule = expected_refusal(scheme, causal, p.hq, p.hkv, p.seq, grid)
    try:
        got = run_seqpar(p, scheme, causal, scale=scale, seq_len=seq_len, **grid)
    except (RuntimeError, ValueError, NotImplementedError) as e:
        message = str(e).strip()
        if rule is None:
            raise AssertionError(f"refused, but no rule expects it: {type(e).__name__}: "
                                 f"{message}") from e
        if not message or not re.search(rule[1], message):
            raise AssertionError(f"refused ({rule[0]}) with an unclear message: "
                                 f"{type(e).__name__}: {message!r}") from e
        raise Refused(message.splitlines()[0]) from None
    if rule is not None:
        raise AssertionError(f"ran, but a rule expects a refusal: {rule[0]}")
    return check(errors(got, ref), p.dtype)


def attention_tests():
    """One test per scheme x mask x dtype x heads, grouped so each reference is made once."""
    tests = []
    cache = {}

    def case(scheme, causal, dtype_name, hq, hkv):
        def fn(seed):
            key = (causal, dtype_name, hq, hkv)
            if key not in cache:  # the first scheme of a configuration makes its reference
                cache.clear()
                gen = generator(seed, f"attention {key}")
                p = Problem(gen, DTYPES[dtype_name], hq, hkv)
                cache[key] = (p, reference(p, causal))
            p, ref = cache[key]
            return attention_case(p, scheme, causal, ref)
        mask = "causal" if causal else "full"
        return (f"attn {scheme} {mask} {dtype_name} hq{hq}/hkv{hkv}", fn)

    for causal in (True, False):
        for dtype_name in DTYPES:
            for hq, hkv in HEADS:
                for scheme in spt.SCHEMES:
                    tests.append(case(scheme, causal, dtype_name, hq, hkv))
    return tests


def selfcheck(dtype_name):
    """The tolerances catch a wrong mask and one missing block of S/(2P) keys: seqpar's causal
    and full results measured against such wrong references must fail them."""
    def fn(seed):
        dtype = DTYPES[dtype_name]
        p = Problem(generator(seed, f"selfcheck {dtype_name}"), dtype, 4, 2)
        chunk = p.seq // (2 * world())
        dropped = list(range(chunk, 2 * chunk))  # the second zigzag chunk's keys
        factors = []
        for causal in (True, False):
            got = run_seqpar(p, "zigzag", causal)
            check(errors(got, reference(p, causal)), dtype)  # the right reference passes
            for what, wrong in (("mask", reference(p, not causal)),
                                ("block", reference(p, causal, drop_keys=dropped))):
                out_err = errors(got, wrong)["out"]
                factor = out_err / TOLERANCES[dtype]["out"]
                if not factor > 5:
                    raise AssertionError(f"a wrong {what} ({'causal' if causal else 'full'}) "
                                         f"gives out error {out_err:.1e}, only {factor:.1f}x "
                                         "the tolerance")
                factors.append(f"{what}/{'causal' if causal else 'full'} {factor:.0f}x")
        return "wrong references exceed the out tolerance by " + ", ".join(factors)
    return (f"selfcheck tolerances {dtype_name}", fn)


def auto_test(causal):
    """scheme "auto": choose_scheme's choice as the layout, attention(scheme="auto")."""
    def fn(seed):
        p = Problem(generator(seed, f"auto {causal}"), torch.float32, 4, 2)
        choice = spt.choose_scheme(p.seq, p.hq, p.hkv, D, batch=B, causal=causal,
                                   dtype=p.dtype)
        if choice.scheme not in spt.SCHEMES:
            raise AssertionError(f"choose_scheme returned {choice!r}")
        got = run_seqpar(p, "auto", causal, layout=choice)
        return f"{choice.scheme} U={choice.ulysses_degree}: " + check(
            errors(got, reference(p, causal)), p.dtype)
    return (f"attn auto {'causal' if causal else 'full'} fp32 hq4/hkv2", fn)


def scale_test(scheme, causal):
    def fn(seed):
        p = Problem(generator(seed, f"scale {scheme}"), torch.float32, 4, 2)
        return attention_case(p, scheme, causal, reference(p, causal, scale=0.3), scale=0.3)
    return (f"softmax_scale 0.3 {scheme} {'causal' if causal else 'full'}", fn)


def uneven_test(scheme, causal, hq=4, hkv=2):
    """seq_len not divisible by the ranks (contiguous layouts split it unevenly)."""
    seq = 16 * world() + 1

    def fn(seed):
        p = Problem(generator(seed, f"uneven {scheme}"), torch.float32, hq, hkv, seq=seq)
        return attention_case(p, scheme, causal, reference(p, causal), seq_len=seq)
    return (f"uneven S={seq} {scheme} {'causal' if causal else 'full'} hq{hq}/hkv{hkv}", fn)


def variant_test(scheme, causal, hq=4, hkv=2, dtype_name="fp32", **grid):
    """A scheme with non-default heads or grid options (ulysses_degree, ranks_per_node)."""
    mask = "causal" if causal else "full"
    options = "".join(f" {k}={v}" for k, v in grid.items())
    name = f"attn {scheme} {mask} {dtype_name} hq{hq}/hkv{hkv}{options}"

    def fn(seed):
        p = Problem(generator(seed, name), DTYPES[dtype_name], hq, hkv)
        return attention_case(p, scheme, causal, reference(p, causal), **grid)
    return (name, fn)


def variant_tests():
    divisors = [u for u in range(1, world() + 1) if world() % u == 0]
    tests = [variant_test("hybrid", True, ulysses_degree=u) for u in divisors]
    tests += [variant_test("hybrid", False, dtype_name="bf16", ulysses_degree=divisors[-2])]
    node = max(1, world() // 2)  # two "nodes"
    tests += [variant_test("tree", True, ranks_per_node=node),
              variant_test("tree", False, hkv=1, dtype_name="bf16", ranks_per_node=node),
              variant_test("hybrid", True, ranks_per_node=node)]
    tests += [variant_test(scheme, True, hq=3, hkv=1) for scheme in ("ring", "ulysses", "hybrid")]
    tests += [variant_test("hybrid", True, hq=3, hkv=1, ulysses_degree=world())]
    tests += [variant_test("ulysses", False, hq=6, hkv=3)]
    return tests


# ---------------------------------------------------------------------------------------------
# a small model: gradients through seqpar into projections, a few optimizer steps

class AttentionLayer(torch.nn.Module):
    """Self-attention with q/k/v/out projections; ``attend`` maps (B, S, H, D) q, k, v to the
    (B, S, Hq, D) output. The k projection has no bias: softmax ignores it (its gradient is 0
    up to rounding, which AdamW would turn into steps of random sign)."""

    def __init__(self, embed=64, heads_q=4, heads_kv=2, head_dim=16):
        super().__init__()
        self.hq, self.hkv, self.d = heads_q, heads_kv, head_dim
        self.q = torch.nn.Linear(embed, heads_q * head_dim)
        self.k = torch.nn.Linear(embed, heads_kv * head_dim, bias=False)
        self.v = torch.nn.Linear(embed, heads_kv * head_dim)
        self.out = torch.nn.Linear(heads_q * head_dim, embed)

    def forward(self, x, attend):
        b, s, _ = x.shape
        q = self.q(x).view(b, s, self.hq, self.d)
        k = self.k(x).view(b, s, self.hkv, self.d)
        v = self.v(x).view(b, s, self.hkv, self.d)
        return self.out(attend(q, k, v).reshape(b, s, self.hq * self.d))


def sdpa_attend(causal):
    def attend(q, k, v):
        out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2),
                                             v.transpose(1, 2), is_causal=causal,
                                             enable_gqa=True)
        return out.transpose(1, 2)
    return attend


def max_rel(a, b):
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item()


def model_test(scheme, causal, optimizer, steps=3):
    """Trains the layer ``steps`` steps on random inputs twice: single-process with SDPA on the
    whole sequence, and distributed (each rank its shard's share of the loss, gradients summed
    over the ranks). Every step's loss and gradients and the final parameters must agree."""
    make_opt = {"sgd": lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9),
                "adamw": lambda ps: torch.optim.AdamW(ps, lr=1e-3, weight_decay=0.01)}[optimizer]

    def fn(seed):
        gen = generator(seed, f"model {scheme} {optimizer}")
        torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=gen)))
        single = AttentionLayer()
        dist_model = AttentionLayer()
        dist_model.load_state_dict(single.state_dict())
        opt_single, opt_dist = make_opt(single.parameters()), make_opt(dist_model.parameters())
        layout = dict(layout=scheme, heads_q=single.hq, heads_kv=single.hkv)
        seq, embed = 64, 64

        def seqpar_attend(q, k, v):
            return spt.attention(q, k, v, scheme=scheme, causal=causal)

        worst = {"loss": 0.0, "grad": 0.0, "param": 0.0}
        for step in range(steps):
            x = torch.randn(B, seq, embed, generator=gen)
            opt_single.zero_grad()
            loss_single = single(x, sdpa_attend(causal)).pow(2).mean()
            loss_single.backward()

            opt_dist.zero_grad()
            y = dist_model(spt.shard(x, **layout), seqpar_attend)
            loss_local = y.pow(2).sum() / (B * seq * embed)  # this rank's share of the mean
            loss_local.backward()
            loss_dist = loss_local.detach().clone()
            dist.all_reduce(loss_dist)
            for param in dist_model.parameters():
                dist.all_reduce(param.grad)

            worst["loss"] = max(worst["loss"], max_rel(loss_dist, loss_single.detach()))
            for (name, a), b in zip(dist_model.named_parameters(), single.parameters()):
                err = max_rel(a.grad, b.grad)
                if not err <= MODEL_RTOL:
                    raise AssertionError(f"step {step}: gradient of {name} differs by {err:.1e}")
                worst["grad"] = max(worst["grad"], err)
            opt_single.step()
            opt_dist.step()
        for (name, a), b in zip(dist_model.named_parameters(), single.parameters()):
            worst["param"] = max(worst["param"], max_rel(a.detach(), b.detach()))
        rtol = {"loss": MODEL_RTOL, "grad": MODEL_RTOL,
                "param": ADAMW_PARAM_RTOL if optimizer == "adamw" else MODEL_RTOL}
        bad = [k for k, e in worst.items() if not e <= rtol[k]]
        detail = (" ".join(f"{k} {e:.1e}" for k, e in worst.items()) +
                  f"  (rtol {MODEL_RTOL:.0e}, params {rtol['param']:.0e})")
        if bad:
            raise AssertionError(f"{', '.join(bad)} differ: {detail}")
        return detail
    return (f"model {scheme} {'causal' if causal else 'full'} {optimizer} x{steps}", fn)


# ---------------------------------------------------------------------------------------------
# torch.compile and opcheck

def compile_test():
    """seqpar.torch.attention inside torch.compile(fullgraph=True): no graph break, and the
    same forward and backward as eager."""
    def fn(seed):
        scheme, causal = "zigzag", True
        p = Problem(generator(seed, "compile"), torch.float32, 4, 2)
        layout = dict(layout=scheme, heads_q=4, heads_kv=2)

        def step(q, k, v):
            return spt.attention(q, k, v, scheme=scheme, causal=causal) * 2.0

        results = []
        for run in (step, torch.compile(step, fullgraph=True, backend="aot_eager")):
            q, k, v = (spt.shard(t, **layout).requires_grad_() for t in (p.q, p.k, p.v))
            out = run(q, k, v)
            out.backward(spt.shard(p.dout, **layout))
            results.append([out.detach(), q.grad, k.grad, v.grad])
        err = max(max_rel(c, e) for e, c in zip(*results))
        if not err <= 1e-6:
            raise AssertionError(f"compiled differs from eager by {err:.1e}")
        return f"compiled vs eager {err:.1e}"
    return ("torch.compile fullgraph aot_eager", fn)


def opcheck_test():
    def fn(seed):
        p = Problem(generator(seed, "opcheck"), torch.float32, 4, 2)
        layout = dict(layout="zigzag", heads_q=4, heads_kv=2)
        q, k, v = (spt.shard(t, **layout).requires_grad_() for t in (p.q, p.k, p.v))
        args = (q, k, v, dist.group.WORLD.group_name, "zigzag", True, 1.0 / math.sqrt(D), S,
                0, 0, True)
        torch.library.opcheck(torch.ops.seqpar.attention_forward.default, args,
                              test_utils=("test_schema", "test_faketensor"))
        return "test_schema, test_faketensor"
    return ("opcheck seqpar::attention_forward", fn)


# ---------------------------------------------------------------------------------------------
# error paths (the same call on every rank, so a refusal cannot leave a rank waiting)

def expect_error(kind, pattern, call):
    """Runs call(); it must raise ``kind`` with a message matching ``pattern``."""
    try:
        call()
    except kind as e:
        if not re.search(pattern, str(e)):
            raise AssertionError(f"{type(e).__name__} without {pattern!r}: {e}") from e
        return f"{type(e).__name__}: {str(e).splitlines()[0][:100]}"
    raise AssertionError(f"no {kind.__name__} raised")


def local_qkv(local_seq=S // 2, hq=4, hkv=2, dtype=torch.float32):
    """Random local shards (no layout needed for calls that must fail)."""
    return (torch.randn(B, local_seq, hq, D, dtype=dtype),
            torch.randn(B, local_seq, hkv, D, dtype=dtype),
            torch.randn(B, local_seq, hkv, D, dtype=dtype))


def error_tests(not_initialised):
    local = S // 2  # any P: these calls fail before the length matters

    def fp64(seed):
        q, k, v = local_qkv(local, dtype=torch.float64)
        return expect_error(ValueError, r"float64",
                            lambda: spt.attention(q, k, v, scheme="ring"))

    def kv_shapes(seed):
        q, k, _ = local_qkv(local)
        v = torch.randn(B, local, 2, D + 8)
        return expect_error(ValueError, r"\bv\b|differ",
                            lambda: spt.attention(q, k, v, scheme="ring"))

    def heads(seed):
        q, k, v = local_qkv(local, hq=4, hkv=3)
        return expect_error(ValueError, r"multiple",
                            lambda: spt.attention(q, k, v, scheme="ring"))

    def scheme(seed):
        q, k, v = local_qkv(local)
        return expect_error(ValueError, r"rign",
                            lambda: spt.attention(q, k, v, scheme="rign"))

    def shard_length(seed):
        # Shards of S/P tokens declared as part of a longer sequence: the plan gives each rank
        # S/P + 2 tokens.
        q, k, v = local_qkv(S // world())
        return expect_error(ValueError, r"seq_len", lambda: spt.attention(
            q, k, v, scheme="zigzag", seq_len=S + 2 * world()))

    def uneven_without_seq_len(seed):
        # Uneven contiguous shards (17, 16, ...) without seq_len: the ranks' default seq_len
        # (local * P) differ, so they disagree on the problem; every rank must get an error.
        seq = 16 * world() + 1
        x = torch.randn(B, seq, 4, D)
        q = spt.shard(x, layout="ring")
        k = v = spt.shard(x[:, :, :2], layout="ring")
        return expect_error((RuntimeError, ValueError), r"\S",
                            lambda: spt.attention(q, k, v, scheme="ring"))

    def bad_ulysses_degree(seed):
        # hybrid's U must divide the ranks: U = 3 divides neither 2 nor 4.
        def call():
            x = torch.randn(B, S, 4, D)
            q = spt.shard(x, layout="hybrid", ulysses_degree=3)
            spt.attention(q, q, q, scheme="hybrid", ulysses_degree=3)
        return expect_error((RuntimeError, ValueError), r"divide", call)

    def non_finite_on_one_rank(seed):
        # A NaN in rank 1's q: every rank's step fails (none is left waiting in it), and with
        # check_finite=False the same call goes through.
        x = torch.randn(B, S, 4, D)
        q = spt.shard(x, layout="zigzag")
        kv = spt.shard(x[:, :, :2], layout="zigzag")
        bad = q.clone()
        if rank() == 1:
            bad[0, 0, 0, 0] = float("nan")
        detail = expect_error(ValueError, r"NaN or Inf",
                              lambda: spt.attention(bad, kv, kv, scheme="zigzag"))
        spt.attention(bad, kv, kv, scheme="zigzag", check_finite=False)
        return detail

    def shard_length_after_a_cached_plan(seed):
        # The plan for this problem exists (a good step first); then rank 1's shard is too
        # short: the cache must not let ranks diverge, every rank gets the error.
        x = torch.randn(B, S, 4, D)
        q = spt.shard(x, layout="ring")
        kv = spt.shard(x[:, :, :2], layout="ring")
        spt.attention(q, kv, kv, scheme="ring", seq_len=S)
        short = (q[:, :-1], kv[:, :-1], kv[:, :-1]) if rank() == 1 else (q, kv, kv)
        return expect_error(ValueError, r"shapes",
                            lambda: spt.attention(*short, scheme="ring", seq_len=S))

    def auto_without_choice(seed):
        q, k, v = local_qkv(S // world())
        return expect_error(ValueError, r"choose_scheme",
                            lambda: spt.attention(q, k, v, scheme="auto", seq_len=S + 4 * world()))

    def layouts_refused(seed):
        x = torch.randn(B, S, 4, D)
        expect_error(ValueError, r"layout=", lambda: spt.shard(x))
        return expect_error(ValueError, r"heads_q=", lambda: spt.shard(x, layout="hybrid"))

    def no_process_group(seed):
        if isinstance(not_initialised, Exception):
            raise not_initialised
        return not_initialised

    return [("error float64 inputs", fp64),
            ("error k/v shapes differ", kv_shapes),
            ("error heads_q not a multiple of heads_kv", heads),
            ("error unknown scheme", scheme),
            ("error shard length vs seq_len", shard_length),
            ("error hybrid ulysses_degree=3", bad_ulysses_degree),
            ("error not initialised (before init)", no_process_group),
            ("error uneven shards without seq_len", uneven_without_seq_len),
            ("error NaN on one rank fails every rank", non_finite_on_one_rank),
            ("error shard length after a cached plan", shard_length_after_a_cached_plan),
            ("error auto without choose_scheme", auto_without_choice),
            ("error shard without layout, hybrid without heads", layouts_refused)]


def before_init():
    """attention before init_process_group must raise RuntimeError (checked before init, the
    result reported as a test later). Returns the detail or the exception."""
    q, k, v = local_qkv(8)
    try:
        return expect_error(RuntimeError, r"not initiali[sz]ed",
                            lambda: spt.attention(q, k, v, scheme="ring"))
    except Exception as e:  # noqa: BLE001 - reported by the test
        return e


# ---------------------------------------------------------------------------------------------

def all_tests(not_initialised):
    tests = [selfcheck("fp32"), selfcheck("bf16")]
    tests += attention_tests()
    tests += variant_tests()
    tests += [auto_test(True), auto_test(False)]
    tests += [scale_test("zigzag", True), scale_test("ring", False),
              uneven_test("ring", True), uneven_test("ulysses", False),
              uneven_test("tree", True), uneven_test("lightseq", True)]
    tests += [model_test("zigzag", True, "sgd"), model_test("zigzag", True, "adamw"),
              model_test("ring", False, "sgd"), model_test("ring", False, "adamw"),
              model_test("ulysses", True, "sgd")]
    tests += [compile_test(), opcheck_test()]
    tests += error_tests(not_initialised)
    return tests


def main():
    not_initialised = before_init()
    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=120))
    torch.set_num_threads(1)
    env_seed = os.environ.get("SEQPAR_TEST_SEED")
    seed = torch.tensor([int(env_seed) if env_seed else
                         int.from_bytes(os.urandom(4), "little") % 2**31])
    dist.broadcast(seed, 0)
    seed = int(seed.item())
    tests = selected(all_tests(not_initialised))
    if rank() == 0:
        print(f"seqpar.torch distributed tests: {world()} ranks (gloo), torch {torch.__version__},"
              f" {len(tests)} tests, seed {seed} (replay: SEQPAR_TEST_SEED={seed})", flush=True)
    start = time.perf_counter()
    failed, refused = run_tests(tests, seed)
    if rank() == 0:
        for dtype in TOLERANCES:
            seen = [f"{k} {MEASURED[(dtype, k)]:.1e}/{TOLERANCES[dtype][k]:.2g}"
                    for k in TOLERANCES[dtype] if (dtype, k) in MEASURED]
            if seen:
                print(f"largest errors / tolerances, {str(dtype)[6:]}: {' '.join(seen)}")
        print(f"{world()} ranks: {len(tests) - failed} of {len(tests)} passed ({refused} refused "
              f"as expected), {failed} failed, {time.perf_counter() - start:.1f}s, seed {seed}",
              flush=True)
    dist.destroy_process_group()
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
