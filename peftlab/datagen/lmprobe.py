"""The causal LM's behaviour table, measured after every build with independent code (plain torch
loops and Hugging Face ``peft``; nothing of peftlab's own training or adapter code).

Per seed:

* exact match of greedy answers on the instruction test split, base model and after LoRA (r=8 on
  every block ``Linear``: q/k/v/o/gate/up/down_proj) trained on the train split;
* the tuned model's *answer loss* (mean nats per answer token, ``[EOS]`` included, teacher forcing)
  with its base block ``Linear`` weights kept, or replaced by their round trip through NF4 (blocks of
  64) or textbook INT4 / 2-bit absmax (one scale per weight matrix), the adapters staying in full precision
  (QLoRA inference; the same with adapters merged first is recorded too);
* the same with ONE base ``Linear`` at a time at 2-bit: per-layer sensitivity.
"""

from __future__ import annotations

import time

import torch
from torch import nn

#: Instruction tuning recipe (LoRA via peft).
LM_LORA = {"r": 8, "lora_alpha": 16, "lora_dropout": 0.0,
           "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
           "epochs": 3, "lr": 2e-3, "batch_size": 8, "weight_decay": 0.0, "warmup_ratio": 0.06}
BLOCKSIZE = 64  # NF4's block (QLoRA, bitsandbytes)

# ---- blockwise quantizers (round trips) ------------------------------------------------------------------
#: The NF4 code book of QLoRA / bitsandbytes (normal-float quantiles, exact zero, asymmetric ends).
NF4_CODE = torch.tensor([
    -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
    -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
    0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0])


def _blocks(w: torch.Tensor, blocksize: int) -> tuple[torch.Tensor, torch.Tensor]:
    flat = w.detach().float().reshape(-1)
    if flat.numel() % blocksize:
        raise ValueError(f"weight of {flat.numel()} elements: not a multiple of blocksize={blocksize}")
    b = flat.view(-1, blocksize)
    absmax = b.abs().amax(dim=1, keepdim=True).clamp_min(1e-12)
    return b, absmax


def nf4_roundtrip(w: torch.Tensor, blocksize: int = BLOCKSIZE) -> torch.Tensor:
    """Blockwise NF4: each block scaled by its absmax, every value → nearest code, back."""
    b, absmax = _blocks(w, blocksize)
    idx = (b / absmax).unsqueeze(-1).sub(NF4_CODE).abs().argmin(-1)
    return (NF4_CODE[idx] * absmax).view_as(w).to(w.dtype)


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
def encode_pairs(tokenizer, rows: list[dict]) -> list[tuple[list[int], int]]:
    """(token ids of prompt + answer + [EOS], number of prompt tokens) for each row."""
    from peftlab.data import format_instruction

    out = []
    for r in rows:
        prompt = tokenizer(format_instruction(r["instruction"]))["input_ids"]
        full = tokenizer(format_instruction(r["instruction"], r["output"]))["input_ids"]
        if full[: len(prompt)] != prompt:
            raise ValueError(f"instruction={r['instruction']!r}: prompt tokens are not a prefix of the full text")
        out.append((full + [tokenizer.eos_token_id], len(prompt)))
    return out


def _batch(pairs, pad_id: int):
    width = max(len(ids) for ids, _ in pairs)
    ids = torch.full((len(pairs), width), pad_id, dtype=torch.long)
    attn = torch.zeros_like(ids)
    labels = torch.full_like(ids, -100)
    for i, (seq, k) in enumerate(pairs):  # right padding: positions are 0..n-1 as in pretraining
        ids[i, : len(seq)] = torch.tensor(seq)
        attn[i, : len(seq)] = 1
        labels[i, k: len(seq)] = torch.tensor(seq[k:])
    return ids, attn, labels


@torch.no_grad()
def answer_loss(model: nn.Module, pairs, pad_id: int, batch: int = 64) -> float:
    """Mean cross-entropy (nats) per answer token, [EOS] included."""
    model.eval()
    tot, n = 0.0, 0
    for i in range(0, len(pairs), batch):
        ids, attn, labels = _batch(pairs[i: i + batch], pad_id)
        logits = model(input_ids=ids, attention_mask=attn).logits[:, :-1]
        tgt = labels[:, 1:]
        sel = tgt != -100
        tot += nn.functional.cross_entropy(logits[sel].float(), tgt[sel], reduction="sum").item()
        n += sel.sum().item()
    return tot / n


@torch.no_grad()
def exact_match(model: nn.Module, tokenizer, rows: list[dict], max_new_tokens: int = 8, batch: int = 50) -> dict:
    """Greedy answers (stop at [EOS] or a newline), compared with the reference after ``strip``: overall,
    per task (``by_task``) and the number of rows per task (``n_by_task``)."""
    from peftlab.data import format_instruction

    model.eval()
    eos = tokenizer.eos_token_id
    hits: dict[str, list[int]] = {}
    for i in range(0, len(rows), batch):
        chunk = rows[i: i + batch]
        seqs = [tokenizer(format_instruction(r["instruction"]))["input_ids"] for r in chunk]
        done = [False] * len(seqs)
        new: list[list[int]] = [[] for _ in seqs]
        for _ in range(max_new_tokens):  # no KV cache: short prompts, and no padding-position subtleties
            width = max(len(s) for s in seqs)
            ids = torch.full((len(seqs), width), tokenizer.pad_token_id, dtype=torch.long)
            attn = torch.zeros_like(ids)
            for j, s in enumerate(seqs):
                ids[j, : len(s)] = torch.tensor(s)
                attn[j, : len(s)] = 1
            logits = model(input_ids=ids, attention_mask=attn).logits
            for j, s in enumerate(seqs):
                if done[j]:
                    continue
                t = int(logits[j, len(s) - 1].argmax())
                if t == eos:
                    done[j] = True
                    continue
                s.append(t)
                new[j].append(t)
            if all(done):
                break
        for r, toks in zip(chunk, new, strict=True):
            text = tokenizer.decode(toks, skip_special_tokens=True).split("\n")[0].strip()
            hits.setdefault(r["task"], []).append(int(text == r["output"]))
    total = sum(sum(v) for v in hits.values()) / len(rows)
    return {"exact_match": round(total, 4),
            "by_task": {k: round(sum(v) / len(v), 3) for k, v in sorted(hits.items())},
            "n_by_task": {k: len(v) for k, v in sorted(hits.items())}}


# ---- LoRA instruction tuning ---------------------------------------------------------------------------
def lora_tune(model: nn.Module, pairs, pad_id: int, seed: int, recipe: dict | None = None) -> tuple[nn.Module, float]:
    """peft LoRA on every block Linear; AdamW, linear warm-up then linear decay; answer-only loss."""
    from peft import LoraConfig, get_peft_model

    rc = dict(LM_LORA, **(recipe or {}))
    torch.manual_seed(seed)
    cfg = LoraConfig(r=rc["r"], lora_alpha=rc["lora_alpha"], lora_dropout=rc["lora_dropout"],
                     target_modules=list(rc["target_modules"]), task_type="CAUSAL_LM")
    model = get_peft_model(model, cfg)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=rc["lr"], weight_decay=rc["weight_decay"])
    bs = rc["batch_size"]
    steps = rc["epochs"] * ((len(pairs) + bs - 1) // bs)
    warm = max(1, int(rc["warmup_ratio"] * steps))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warm if s < warm else max(0.0, (steps - s) / max(1, steps - warm)))
    gen = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    model.train()
    for _ in range(rc["epochs"]):
        order = torch.randperm(len(pairs), generator=gen).tolist()
        for i in range(0, len(order), bs):
            ids, attn, labels = _batch([pairs[j] for j in order[i: i + bs]], pad_id)
            loss = model(input_ids=ids, attention_mask=attn, labels=labels).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    model.eval()
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
                     "train_seconds": secs, **qt})
        pl = qt["int2_per_layer"]
        log(f"  LM seed {seed}: LoRA exact match {em['exact_match']:.3f} {em['by_task']} ({secs}s); answer loss "
            f"{qt['answer_loss']:.4f}; NF4 {qt['nf4']['increase_pct']:+.2f}% INT4 {qt['int4']['increase_pct']:+.2f}% "
            f"2-bit {qt['int2']['increase_pct']:+.2f}%; per-layer 2-bit max {pl['max']:.4f} ({pl['most_sensitive']}) "
            f"median {pl['median']:.4f}")
    return {"recipe": dict(LM_LORA, **(recipe or {})), "blocksize": BLOCKSIZE, "base": base, "runs": runs}
