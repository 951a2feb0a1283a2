"""The causal LM's behaviour table, measured after every build with Hugging Face ``peft``'s LoRA (none of
peftlab's adapter code), trained by the package's one training loop (:func:`peftlab.train.fit`, its warm-up/decay
schedule and its answer-only batches).

Per seed:

* exact match of greedy answers on the instruction test split, base model and after LoRA (r=8 on
  every block ``Linear``: q/k/v/o/gate/up/down_proj) trained on the train split;
* the tuned model's *answer loss* (mean nats per answer token, ``[EOS]`` included, teacher forcing)
  with its base block ``Linear`` weights kept, or replaced by their round trip through NF4 (blocks of
  64) or textbook INT4 / 2-bit absmax (one scale per weight matrix), the adapters staying in full precision
  (QLoRA inference; the same with adapters merged first is recorded too);
* the same with ONE base ``Linear`` at a time at 2-bit: per-layer sensitivity.

Once per build, on the *base* model (no adapter):

* the next-token loss on held-out lines (``[BOS] line [EOS]``, every token after ``[BOS]``; the build passes the
  corpus's held-out lines plus new knowledge lines in the LM's training token shares, and the corpus lines alone) with every
  block ``Linear`` round-tripped through NF4, FP4 (bitsandbytes' code books), INT4, INT3 and 2-bit absmax
  integers, all with one absmax per block of 64; the increase with a 95 % paired bootstrap interval over lines,
  paired intervals of the differences between quantizers, each quantizer's weight RMSE, and the increase split
  into its odd (first-order, ``L(W+Δ) − L(W−Δ)``) and even (second-order, ``L(W+Δ) + L(W−Δ) − 2L(W)``) parts
  (:func:`heldout_quantization`);
* the room for a per-layer bit search as Week 05 measures it (:func:`qr_headroom`; this one uses
  :mod:`peftlab.qr_adaptor`'s fine-tuning evaluator, the code Week 05 runs).
"""

from __future__ import annotations

import time

import torch
from torch import nn

from peftlab.core.targets import LLAMA_LINEARS
from peftlab.quant import BLOCKSIZE  # NF4's block (QLoRA, bitsandbytes): 64
from peftlab.train import (
    answer_batch,
    encode_answer_pairs,
    fit,
    greedy_answers,
    index_batches,
    labels_loss,
    make_optimizer,
    warmup_steps,
)
from peftlab.train import answer_loss as shared_answer_loss

#: Instruction tuning recipe (LoRA via peft).
LM_LORA = {"r": 8, "lora_alpha": 16, "lora_dropout": 0.0,
           "target_modules": list(LLAMA_LINEARS),
           "epochs": 3, "lr": 2e-3, "batch_size": 8, "weight_decay": 0.0, "warmup_ratio": 0.06}

# ---- blockwise quantizers (round trips) ------------------------------------------------------------------
#: The NF4 code book of QLoRA / bitsandbytes (normal-float quantiles, exact zero, asymmetric ends).
NF4_CODE = torch.tensor([
    -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
    -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
    0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0])


#: bitsandbytes' FP4 code book (sign bit, 2 exponent bits, 1 mantissa bit): magnitudes 0, 1/16, 2, 3, 4, 6, 8, 12,
#: divided by 12 (``peftlab.quant.code_book("fp4")``; its +0 and −0 are one level here).
FP4_CODE = torch.tensor(sorted({s * v / 12 for v in (0.0, 0.0625, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0) for s in (-1, 1)}))


def _blocks(w: torch.Tensor, blocksize: int) -> tuple[torch.Tensor, torch.Tensor]:
    flat = w.detach().float().reshape(-1)
    if flat.numel() % blocksize:
        raise ValueError(f"weight of {flat.numel()} elements: not a multiple of blocksize={blocksize}")
    b = flat.view(-1, blocksize)
    absmax = b.abs().amax(dim=1, keepdim=True).clamp_min(1e-12)
    return b, absmax


def code_roundtrip(w: torch.Tensor, code: torch.Tensor, blocksize: int = BLOCKSIZE) -> torch.Tensor:
    """Blockwise code book: each block scaled by its absmax, every value → nearest code (ties to the lower), back."""
    b, absmax = _blocks(w, blocksize)
    idx = (b / absmax).unsqueeze(-1).sub(code).abs().argmin(-1)
    return (code[idx] * absmax).view_as(w).to(w.dtype)


def nf4_roundtrip(w: torch.Tensor, blocksize: int = BLOCKSIZE) -> torch.Tensor:
    """Blockwise NF4: each block scaled by its absmax, every value → nearest code, back."""
    return code_roundtrip(w, NF4_CODE, blocksize)


def fp4_roundtrip(w: torch.Tensor, blocksize: int = BLOCKSIZE) -> torch.Tensor:
    """Blockwise FP4 (bitsandbytes' code book)."""
    return code_roundtrip(w, FP4_CODE, blocksize)


def absmax_roundtrip(w: torch.Tensor, bits: int, blocksize: int = BLOCKSIZE) -> torch.Tensor:
    """Blockwise symmetric integer absmax: q = round(x / absmax · (2^(bits-1) − 1)) (INT4: −7…7,
    2-bit: −1, 0, 1)."""
    qmax = 2 ** (bits - 1) - 1
    b, absmax = _blocks(w, blocksize)
    q = torch.round(b / absmax * qmax).clamp(-qmax, qmax)
    return (q * absmax / qmax).view_as(w).to(w.dtype)


def tensor_absmax_roundtrip(w: torch.Tensor, bits: int) -> torch.Tensor:
    """Textbook symmetric absmax: one scale for the whole weight matrix, q = round(x / absmax · (2^(bits-1) − 1))."""
    qmax = 2 ** (bits - 1) - 1
    x = w.detach().float()
    absmax = x.abs().max().clamp_min(1e-12)
    return (torch.round(x / absmax * qmax).clamp(-qmax, qmax) * absmax / qmax).to(w.dtype)


#: The quantizers of the table. NF4 is QLoRA's (normal-float code book, one absmax per block of 64);
#: INT4 and 2-bit are the textbook absmax integers with one scale per weight matrix, the baseline that
#: QLoRA's blockwise NF4 improves on. ``int4_block64`` (NF4's blocks, integer code book) and
#: ``int2_block64`` are reported beside them, not checked.
QUANTIZERS = {"nf4": nf4_roundtrip, "int4": lambda w: tensor_absmax_roundtrip(w, 4),
              "int2": lambda w: tensor_absmax_roundtrip(w, 2), "int4_block64": lambda w: absmax_roundtrip(w, 4),
              "int2_block64": lambda w: absmax_roundtrip(w, 2)}


def block_linears(model: nn.Module) -> dict[str, nn.Linear]:
    """Every frozen base ``Linear`` inside the decoder blocks (through peft's ``base_layer`` wrappers)."""
    out = {}
    for name, mod in model.named_modules():
        if isinstance(mod, nn.Linear) and ".layers." in name and "lora_" not in name:
            out[name.replace(".base_layer", "").replace("base_model.model.", "")] = mod
    return out


# ---- data ---------------------------------------------------------------------------------------------
#: (token ids of prompt + answer + [EOS], number of prompt tokens) for each row: the package's answer-only encoder
encode_pairs = encode_answer_pairs


def answer_loss(model: nn.Module, pairs, pad_id: int, batch: int = 64) -> float:
    """Mean cross-entropy (nats) per answer token, [EOS] included (:func:`peftlab.train.answer_loss`)."""
    return shared_answer_loss(model, pairs, pad_id, batch)


def exact_match(model: nn.Module, tokenizer, rows: list[dict], max_new_tokens: int = 8, batch: int = 50) -> dict:
    """Greedy answers (stop at [EOS] or a newline; :func:`peftlab.train.greedy_answers`), compared with the
    reference after ``strip``: overall, per task (``by_task``) and the number of rows per task (``n_by_task``);
    where rows carry ``phrasing`` (the test split: ``train`` / ``new``), per phrasing too (``by_phrasing``)."""
    answers = greedy_answers(model, tokenizer, [r["instruction"] for r in rows], max_new_tokens, batch)
    hits: dict[str, list[int]] = {}
    by_phrasing: dict[str, list[int]] = {}
    for r, text in zip(rows, answers, strict=True):
        hits.setdefault(r["task"], []).append(int(text == r["output"]))
        if "phrasing" in r:
            by_phrasing.setdefault(r["phrasing"], []).append(int(text == r["output"]))
    total = sum(sum(v) for v in hits.values()) / len(rows)
    out = {"exact_match": round(total, 4),
           "by_task": {k: round(sum(v) / len(v), 3) for k, v in sorted(hits.items())},
           "n_by_task": {k: len(v) for k, v in sorted(hits.items())}}
    if by_phrasing:
        out["by_phrasing"] = {k: round(sum(v) / len(v), 4) for k, v in sorted(by_phrasing.items())}
        out["n_by_phrasing"] = {k: len(v) for k, v in sorted(by_phrasing.items())}
    return out


# ---- LoRA instruction tuning ---------------------------------------------------------------------------
def lora_tune(model: nn.Module, pairs, pad_id: int, seed: int, recipe: dict | None = None) -> tuple[nn.Module, float]:
    """peft LoRA on every block Linear; AdamW, linear warm-up then linear decay; answer-only loss."""
    from peft import LoraConfig, get_peft_model

    rc = dict(LM_LORA, **(recipe or {}))
    torch.manual_seed(seed)
    cfg = LoraConfig(r=rc["r"], lora_alpha=rc["lora_alpha"], lora_dropout=rc["lora_dropout"],
                     target_modules=list(rc["target_modules"]), task_type="CAUSAL_LM")
    model = get_peft_model(model, cfg)
    bs = rc["batch_size"]
    steps = rc["epochs"] * ((len(pairs) + bs - 1) // bs)
    gen = torch.Generator().manual_seed(seed)
    batches = (answer_batch([pairs[j] for j in idx], pad_id)
               for idx in index_batches(len(pairs), bs, gen, epochs=rc["epochs"]))
    t0 = time.perf_counter()
    fit(model, batches, labels_loss, make_optimizer(model, rc["lr"], rc["weight_decay"]), total_steps=steps,
        warmup=warmup_steps(steps, rc["warmup_ratio"], at_least=1))
    return model, round(time.perf_counter() - t0, 1)


@torch.no_grad()
def quantization_table(model: nn.Module, pairs, pad_id: int) -> dict:
    """Answer loss with every block Linear's base weight round-tripped through each quantizer, and the
    per-layer 2-bit sensitivity (one Linear at a time). Weights are restored afterwards."""
    lins = block_linears(model)
    orig = {n: m.weight.data.clone() for n, m in lins.items()}
    base = answer_loss(model, pairs, pad_id)
    out = {"answer_loss": round(base, 5)}
    for q, fn in QUANTIZERS.items():
        for n, m in lins.items():
            m.weight.data = fn(orig[n])
        loss = answer_loss(model, pairs, pad_id)
        for n, m in lins.items():
            m.weight.data = orig[n]
        out[q] = {"answer_loss": round(loss, 5), "increase": round(loss - base, 5),
                  "increase_pct": round(100 * (loss - base) / base, 2)}
    # the same with the adapters merged first (post-training quantization of the tuned model): reported only
    import copy

    merged = copy.deepcopy(model).merge_and_unload()
    mlins = block_linears(merged)
    morig = {n: m.weight.data.clone() for n, m in mlins.items()}
    mbase = answer_loss(merged, pairs, pad_id)
    out["merged"] = {"answer_loss": round(mbase, 5)}
    for q, fn in QUANTIZERS.items():
        for n, m in mlins.items():
            m.weight.data = fn(morig[n])
        out["merged"][q] = round(100 * (answer_loss(merged, pairs, pad_id) - mbase) / mbase, 2)
    del merged
    per_layer = {}
    for n, m in lins.items():
        m.weight.data = QUANTIZERS["int2"](orig[n])
        per_layer[n] = round(answer_loss(model, pairs, pad_id) - base, 5)
        m.weight.data = orig[n]
    vals = sorted(per_layer.values())
    median = vals[len(vals) // 2] if len(vals) % 2 else 0.5 * (vals[len(vals) // 2 - 1] + vals[len(vals) // 2])
    top = max(per_layer, key=per_layer.get)
    out["int2_per_layer"] = {"increase": per_layer, "most_sensitive": top, "max": per_layer[top],
                             "median": round(median, 5), "max_over_median": round(per_layer[top] / max(median, 1e-9), 2)}
    return out


def measure_lm(lm_dir, train_rows: list[dict], test_rows: list[dict], seeds, recipe: dict | None = None,
               log=print) -> dict:
    """The causal-LM table for every seed (base exact match once: greedy decoding has no seed)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(lm_dir)
    train, test = encode_pairs(tok, train_rows), encode_pairs(tok, test_rows)
    base_model = AutoModelForCausalLM.from_pretrained(lm_dir)
    base = exact_match(base_model, tok, test_rows)
    base["answer_loss"] = round(answer_loss(base_model, test, tok.pad_token_id), 4)
    log(f"  LM base: exact match {base['exact_match']:.3f} {base['by_task']}; answer loss {base['answer_loss']}")
    runs = []
    for seed in seeds:
        model, secs = lora_tune(AutoModelForCausalLM.from_pretrained(lm_dir), train, tok.pad_token_id, seed, recipe)
        em = exact_match(model, tok, test_rows)
        qt = quantization_table(model, test, tok.pad_token_id)
        runs.append({"seed": seed, "lora_exact_match": em["exact_match"], "lora_by_task": em["by_task"],
                     **({"lora_by_phrasing": em["by_phrasing"]} if "by_phrasing" in em else {}),
                     "train_seconds": secs, **qt})
        pl = qt["int2_per_layer"]
        log(f"  LM seed {seed}: LoRA exact match {em['exact_match']:.3f} {em['by_task']} ({secs}s); answer loss "
            f"{qt['answer_loss']:.4f}; NF4 {qt['nf4']['increase_pct']:+.2f}% INT4 {qt['int4']['increase_pct']:+.2f}% "
            f"2-bit {qt['int2']['increase_pct']:+.2f}%; per-layer 2-bit max {pl['max']:.4f} ({pl['most_sensitive']}) "
            f"median {pl['median']:.4f}")
    return {"recipe": dict(LM_LORA, **(recipe or {})), "blocksize": BLOCKSIZE, "base": base, "runs": runs}


# ---- held-out text under post-training quantization (base model) ----------------------------------------
#: The held-out table's quantizers: every one with one absmax per block of 64 (NF4 and FP4 are bitsandbytes'
#: code books; INT4/INT3/2-bit are symmetric integers k/(2^(bits-1) − 1), 2-bit ternary).
HELDOUT_QUANTIZERS = {"nf4": nf4_roundtrip, "fp4": fp4_roundtrip, "int4": lambda w: absmax_roundtrip(w, 4),
                      "int3": lambda w: absmax_roundtrip(w, 3), "int2": lambda w: absmax_roundtrip(w, 2)}
#: Paired differences of the increases (first − second, in points of %) that the targets read.
HELDOUT_PAIRS = (("nf4", "fp4"), ("nf4", "int4"), ("int3", "int4"), ("int2", "int3"))
BOOTSTRAP = 2000


def encode_lines(tokenizer, lines: list[str]) -> list[list[int]]:
    """``[BOS] line [EOS]`` token ids per line (the pretraining text's framing)."""
    return [tokenizer(line)["input_ids"] + [tokenizer.eos_token_id] for line in lines]


@torch.no_grad()
def line_losses(model: nn.Module, seqs: list[list[int]], pad_id: int, batch: int = 128) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed next-token cross-entropy (nats, float64) and number of predicted tokens, per sequence; every sequence
    starts at position 0 (right padding, length-sorted batches)."""
    model.eval()
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
    sums, counts = torch.zeros(len(seqs), dtype=torch.float64), torch.zeros(len(seqs), dtype=torch.float64)
    for s in range(0, len(order), batch):
        idx = order[s: s + batch]
        width = max(len(seqs[i]) for i in idx)
        ids = torch.full((len(idx), width), pad_id, dtype=torch.long)
        attn = torch.zeros_like(ids)
        for j, i in enumerate(idx):
            ids[j, : len(seqs[i])] = torch.tensor(seqs[i])
            attn[j, : len(seqs[i])] = 1
        logits = model(input_ids=ids, attention_mask=attn).logits[:, :-1].float()
        keep = attn[:, 1:].bool()
        nll = nn.functional.cross_entropy(logits.transpose(1, 2), ids[:, 1:], reduction="none") * keep
        sums[idx] = nll.sum(1).double()
        counts[idx] = keep.sum(1).double()
    return sums, counts


def _ci(boot: torch.Tensor) -> list[float]:
    lo, hi = torch.quantile(boot, torch.tensor([0.025, 0.975], dtype=boot.dtype)).tolist()
    return [round(lo, 3), round(hi, 3)]


@torch.no_grad()
def heldout_quantization(model: nn.Module, tokenizer, lines: list[str], *, boot: int = BOOTSTRAP, seed: int = 0,
                         log=print) -> dict:
    """Base-model loss on held-out ``lines`` with every block Linear round-tripped through each of
    :data:`HELDOUT_QUANTIZERS`; increases in % of the full-precision loss with 95 % paired bootstrap intervals
    (the same ``boot`` resamples of lines for every number). Weights are restored afterwards."""
    seqs = encode_lines(tokenizer, lines)
    lins = block_linears(model)
    orig = {n: m.weight.data.clone() for n, m in lins.items()}
    base, counts = line_losses(model, seqs, tokenizer.pad_token_id)
    resample = torch.randint(0, len(seqs), (boot, len(seqs)), generator=torch.Generator().manual_seed(seed))
    b_base = base[resample].sum(1)

    def pct(x: torch.Tensor) -> tuple[float, list[float]]:  # 100·Σx / Σbase, point and interval
        return round(100 * x.sum().item() / base.sum().item(), 3), _ci(100 * x[resample].sum(1) / b_base)

    def run(deltas: dict, sign: float) -> torch.Tensor:
        try:
            for n, m in lins.items():
                m.weight.data = orig[n] + sign * deltas[n]
            return line_losses(model, seqs, tokenizer.pad_token_id)[0]
        finally:
            for n, m in lins.items():
                m.weight.data = orig[n]

    out = {"lines": len(seqs), "tokens": int(counts.sum().item()), "loss": round(base.sum().item() / counts.sum().item(), 5),
           "blocksize": BLOCKSIZE, "bootstrap": boot, "quantizers": {}, "differences": {}}
    losses = {}
    for q, fn in HELDOUT_QUANTIZERS.items():
        deltas = {n: fn(w) - w for n, w in orig.items()}
        rmse = (sum((d.double() ** 2).sum().item() for d in deltas.values())
                / sum(d.numel() for d in deltas.values())) ** 0.5
        plus, minus = run(deltas, 1.0), run(deltas, -1.0)
        losses[q] = plus
        inc, ci = pct(plus - base)
        first, first_ci = pct(0.5 * (plus - minus))
        second, second_ci = pct(0.5 * (plus + minus - 2 * base))
        out["quantizers"][q] = {"loss": round(plus.sum().item() / counts.sum().item(), 5), "increase_pct": inc,
                                "ci95": ci, "weight_rmse": round(rmse, 6), "first_order_pct": first,
                                "first_order_ci95": first_ci, "second_order_pct": second, "second_order_ci95": second_ci}
        log(f"  held-out, {q}: {inc:+.3f} % [{ci[0]:+.3f}, {ci[1]:+.3f}] (first order {first:+.3f}, second "
            f"order {second:+.3f}); weight RMSE {rmse:.5f}")
    for a, b in HELDOUT_PAIRS:
        d, ci = pct(losses[a] - losses[b])
        out["differences"][f"{a}-{b}"] = {"points": d, "ci95": ci}
    return out


# ---- room for a per-layer bit search (QR-Adaptor, Week 05) -----------------------------------------------
#: Week 05's setup: knowledge lines split by ``random.Random(0).sample`` into 48 sensitivity / 48 calibration /
#: 48 test / 400 training lines; LoRA r=4 (α=8) on every block Linear, 12 AdamW steps, lr 2e-3, batch 8, seed 0.
#: The verdicts read ``test_lines`` further knowledge lines outside that sample (48 lines are too few for a
#: paired SE of a few thousandths of a nat).
QR_SETUP = {"rank": 4, "steps": 12, "lr": 2e-3, "batch_size": 8, "seed": 0, "train_lines": 400, "calib_lines": 192,
            "test_lines": 1200}
#: the ladders of the joint search (QR-Adaptor's per-layer choices; the authors' bit set, Week 05's ranks)
QR_BITS, QR_RANKS = (2, 3, 4, 8), (2, 4, 8)


def qr_headroom(lm_dir, world_lines: list[str], setup: dict | None = None, log=print) -> dict:
    """Loss after Week 05's short LoRA fine-tune on the quantized base, for uniform 2/3/4/8/16-bit bases (rank
    ``setup["rank"]``) and for two greedy searches at the bytes of uniform 3-bit (that rank), both choosing by the
    mean loss on calibration lines and judged on test lines they never saw (paired SEs over test lines):

    * bits only, by decoder layer: start at uniform 3-bit; each step tries every move of one layer up the bit
      ladder 2 → 3 → 4 → 8 paid by another layer down it, keeps the best, stops when none improves;
    * bits and ranks together (QR-Adaptor's space), top down: start at uniform 4-bit (over the budget); each step
      lowers one layer one rung of its bits or of its rank, the move that costs the least calibration loss per
      byte saved, until the configuration fits the budget.
    """
    import itertools
    import random

    from transformers import AutoModelForCausalLM, AutoTokenizer

    from peftlab import qr_adaptor as qa

    su = dict(QR_SETUP, **(setup or {}))
    t0 = time.perf_counter()
    lm, tok = AutoModelForCausalLM.from_pretrained(lm_dir), AutoTokenizer.from_pretrained(lm_dir)
    n_train, n_calib = su["train_lines"], su["calib_lines"]
    sample = random.Random(0).sample(world_lines, min(len(world_lines), 48 * 2 + n_calib + n_train))
    calib, train = sample[48:48 + n_calib], sample[96 + n_calib:]
    taken = set(sample)
    rest = [x for x in world_lines if x not in taken]
    test = random.Random(1).sample(rest, min(len(rest), su["test_lines"]))
    groups = qa.layer_groups(lm, by="layer")
    units = tuple(groups)
    memory = qa.MemoryModel.from_model(lm, groups)
    ev = qa.LoRAFinetuneEvaluator(lm, tok, groups, train, calib, steps={"high": su["steps"]}, lr=su["lr"],
                                  batch_size=su["batch_size"], seed=su["seed"])
    seqs = {"calib": encode_lines(tok, calib), "test": encode_lines(tok, test)}
    cache: dict = {}

    def losses(cfg: tuple) -> dict:  # cfg: one (bits, rank) per layer; per-line losses of its fine-tune, cached
        if cfg not in cache:
            model = ev.finetune(ev.build(cfg), su["steps"])
            cache[cfg] = {k: line_losses(model, sq, tok.pad_token_id) for k, sq in seqs.items()}
        return cache[cfg]

    def mean(cfg, split="calib") -> float:
        sm, c = losses(cfg)[split]
        return sm.sum().item() / c.sum().item()

    def paired(a, b) -> dict:  # mean loss of a − mean loss of b on the test lines, and its paired SE
        (sa, c), (sb, _) = losses(a)["test"], losses(b)["test"]
        d = sa - sb
        diff, se = d.sum().item() / c.sum().item(), len(d) ** 0.5 * d.std().item() / c.sum().item()
        return {"diff": round(diff, 5), "se": round(se, 5), "z": round(diff / se, 2) if se > 0 else 0.0}

    def uniform(bits: int, rank: int = su["rank"]) -> tuple:
        return tuple((bits, rank) for _ in units)

    def report(cfg) -> dict:
        return {"chosen": [list(c) for c in cfg], "chosen_bytes": memory.bytes(cfg),
                "calib_loss": round(mean(cfg), 5), "test_loss": round(mean(cfg, "test"), 5)}

    out = {"setup": su, "units": list(units), "uniform": {}}
    for b in (2, 3, 4, 8, 16):
        out["uniform"][str(b)] = {"bytes": memory.bytes(uniform(b)), "calib_loss": round(mean(uniform(b)), 5),
                                  "test_loss": round(mean(uniform(b), "test"), 5)}
    budget = memory.bytes(uniform(3))
    # bits only, by layer, from uniform 3-bit
    cur, path = uniform(3), [[b for b, _ in uniform(3)]]
    while True:
        moves = set()
        for i, j in itertools.permutations(range(len(units)), 2):
            for up, down in itertools.product(QR_BITS, QR_BITS):
                if up > cur[i][0] and down < cur[j][0]:
                    cand = list(cur)
                    cand[i], cand[j] = (up, su["rank"]), (down, su["rank"])
                    if memory.bytes(tuple(cand)) <= budget:
                        moves.add(tuple(cand))
        best = min(sorted(moves), key=mean) if moves else None
        if best is None or mean(best) >= mean(cur):
            break
        cur = best
        path.append([b for b, _ in cur])
    out["search"] = {"budget_bytes": budget, "path": path, **report(cur)}
    bits_only = cur
    # bits and ranks together, top down from uniform 4-bit
    cur, path = uniform(4), [[list(c) for c in uniform(4)]]
    while memory.bytes(cur) > budget:
        steps = []
        for i, (b, r) in enumerate(cur):
            lower = ([(QR_BITS[QR_BITS.index(b) - 1], r)] if QR_BITS.index(b) > 0 else []) + \
                    ([(b, QR_RANKS[QR_RANKS.index(r) - 1])] if r in QR_RANKS and QR_RANKS.index(r) > 0 else [])
            for choice in lower:
                cand = cur[:i] + (choice,) + cur[i + 1:]
                steps.append(((mean(cand) - mean(cur)) / (memory.bytes(cur) - memory.bytes(cand)), cand))
        if not steps:
            break
        cur = min(steps)[1]
        path.append([list(c) for c in cur])
    joint = cur if memory.bytes(cur) <= budget else uniform(3)
    out["search_joint"] = {"budget_bytes": budget, "path": path, **report(joint)}
    cur = joint if mean(joint) < mean(bits_only) else bits_only  # the better of the two searches, by calibration loss
    out["chosen_search"] = "joint" if cur == joint else "bits"
    out["evaluations"] = len(cache)
    out["int3_minus_int16"] = paired(uniform(3), uniform(16))
    out["int3_minus_chosen"] = paired(uniform(3), cur)
    out["int4_minus_int16"] = paired(uniform(4), uniform(16))
    out["seconds"] = round(time.perf_counter() - t0, 1)
    u = out["uniform"]
    log(f"  QR headroom (Week 05 fine-tune, {len(test)} test lines): uniform 2/3/4/8/16-bit "
        + " / ".join(f"{u[str(b)]['test_loss']:.4f}" for b in (2, 3, 4, 8, 16))
        + f"; 3-bit − 16-bit {out['int3_minus_int16']['diff']:+.4f} ({out['int3_minus_int16']['z']:.1f} SE); bits only "
        f"{[c[0] for c in out['search']['chosen']]} {out['search']['test_loss']:.4f}, bits and ranks "
        f"{[tuple(c) for c in out['search_joint']['chosen']]} {out['search_joint']['test_loss']:.4f}; 3-bit − chosen "
        f"({out['chosen_search']}) {out['int3_minus_chosen']['diff']:+.4f} ({out['int3_minus_chosen']['z']:.1f} SE); "
        f"{out['evaluations']} fine-tunes, {out['seconds']} s")
    return out
