"""The embedded tiny-profile data: integrity, balance, difficulty, determinism, and the build itself."""

from __future__ import annotations

import json
import os
import re
from collections import Counter

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

from peftlab import data as pdata  # noqa: E402
from peftlab.datagen import make_corpus, make_instructions, make_splits  # noqa: E402
from peftlab.datagen.build import BuildConfig, generate_text, sha256, split_sentences  # noqa: E402


@pytest.fixture(scope="module")
def root():
    return pdata.data_root()


@pytest.fixture(scope="module")
def manifest(root):
    return json.loads((root / "MANIFEST.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def sentiment(root):
    return {s: pdata.read_jsonl(root / "sentiment" / f"{s}.jsonl") for s in ("train", "valid", "test", "heldout_lexicon")}


def test_every_file_matches_the_manifest(root, manifest):
    on_disk = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()} - {"MANIFEST.json"}
    assert on_disk == set(manifest["files"]), "data/ and MANIFEST.json list different files"
    for rel, info in manifest["files"].items():
        assert (root / rel).stat().st_size == info["bytes"], rel
        assert sha256(root / rel) == info["sha256"], f"{rel} changed since the build"
    assert manifest["total_bytes"] < 25_000_000


def test_manifest_records_both_tables_and_every_target_met(manifest):
    from peftlab.datagen.targets import NOT_ENFORCED, PER_BUILD, TARGETS, check

    m = manifest["metrics"]
    enc, lm = m["encoder"], m["causal_lm"]
    assert [r["seed"] for r in enc["runs"]] == [r["seed"] for r in lm["runs"]] == [0, 1, 2]
    rows = check(enc, lm)
    assert rows == m["targets"]["rows"], "the recorded target rows are not what the recorded tables give"
    per_build = set(PER_BUILD)  # one row per build; every other target one row per seed
    assert all(r["seed"] == -1 for r in rows if r["target"] in per_build)
    assert {r["target"] for r in rows} == set(TARGETS) and len(rows) == 3 * (len(TARGETS) - len(per_build)) + len(per_build)
    assert m["targets"]["enforced"] and m["targets"]["missed"] == 0
    assert all(r["ok"] for r in rows if r["enforced"]), [r for r in rows if not r["ok"] and r["enforced"]]
    assert {r["target"] for r in rows if not r["enforced"]} <= set(NOT_ENFORCED)
    mlm, clm = m["mlm"], m["clm"]
    assert mlm["end"]["loss"] < mlm["start"]["loss"] and mlm["end"]["accuracy"] > 0.3
    assert clm["end"]["perplexity"] < clm["start"]["perplexity"] / 20
    # the held-out lexicon is the evaluation with headroom: pretraining is what classifies it
    for r in enc["runs"]:
        assert r["full"]["heldout_lexicon"] > r["scratch"]["heldout_lexicon"] + 0.05, r


def test_manifest_used_the_current_recipes(manifest):
    from peftlab.datagen.lmprobe import BLOCKSIZE, BOOTSTRAP, HELDOUT_QUANTIZERS, LM_LORA, QR_SETUP
    from peftlab.datagen.probe import LORA, RECIPE

    m = manifest["metrics"]
    as_json = lambda x: json.loads(json.dumps(x))  # noqa: E731
    assert m["encoder"]["recipe"] == as_json(RECIPE) and m["encoder"]["lora"] == as_json(LORA)
    assert m["causal_lm"]["recipe"] == as_json(LM_LORA) and m["causal_lm"]["blocksize"] == BLOCKSIZE
    held = m["causal_lm"]["heldout"]
    assert list(held["quantizers"]) == list(HELDOUT_QUANTIZERS) and held["blocksize"] == BLOCKSIZE
    assert held["corpus_lines"] == manifest["config"]["heldout_lines"]
    assert held["lines"] == held["corpus_lines"] + held["knowledge_lines"] == m["causal_lm"]["heldout_corpus"]["lines"] + held["knowledge_lines"]
    # the held-out text holds knowledge text in the LM's training share of tokens (to one line's tokens)
    assert abs(held["heldout_knowledge_token_share"] - held["train_knowledge_token_share"]) < 0.01
    assert held["bootstrap"] == BOOTSTRAP
    assert m["causal_lm"]["qr_headroom"]["setup"] == as_json(QR_SETUP)
    qr = m["causal_lm"]["qr_headroom"]
    for search in (qr["search"], qr["search_joint"]):  # both allocations fit the budget of uniform 3-bit
        assert search["chosen_bytes"] <= search["budget_bytes"] == qr["uniform"]["3"]["bytes"]
        assert len(search["chosen"]) == len(qr["units"]) and all(len(c) == 2 for c in search["chosen"])
    assert qr["chosen_search"] in ("bits", "joint")
    cfg = {k: (list(v) if isinstance(v, tuple) else v) for k, v in BuildConfig().__dict__.items()}
    assert manifest["config"] == cfg
    # the encoder table is trained on the few-label subset: the first probe_train_size training reviews
    n_train = len(pdata.read_jsonl(pdata.data_root() / "sentiment" / "train.jsonl"))
    assert m["encoder"]["train_size"] == min(n_train, BuildConfig().probe_train_size or n_train)


def test_manifest_linear_probe_reproduces(root, manifest, sentiment):
    """One real measurement (seed 0 linear probe on frozen features, a few seconds) gives the recorded numbers,
    within 0.01: 10 of the 1,000 test examples, more than twice the spread of the three recorded seeds (0.004),
    so another CPU's kernels (which move a trained probe by an example or two) cannot fail it."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    from peftlab.datagen.probe import RECIPE, linear_probe

    run = next(r for r in manifest["metrics"]["encoder"]["runs"] if r["seed"] == 0)
    enc_dir = root / "models" / "tiny-ko-bert"
    tok = AutoTokenizer.from_pretrained(enc_dir)
    rows = lambda split: [(r["text"], r["label"]) for r in sentiment[split]]  # noqa: E731
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        got = linear_probe(AutoModel.from_pretrained(enc_dir, add_pooling_layer=False), tok,
                           rows("train")[: BuildConfig().probe_train_size],
                           {"accuracy": rows("test"), "heldout_lexicon": rows("heldout_lexicon")}, seed=0,
                           max_length=RECIPE["max_length"])
    finally:
        torch.set_num_threads(threads)
    for k, v in got.items():
        assert abs(v - run["linear_probe"][k]) <= 0.01, (k, got, run["linear_probe"])


def test_nf4_round_trip_matches_bitsandbytes():
    import torch

    from peftlab.datagen.lmprobe import absmax_roundtrip, nf4_roundtrip

    bnbf = pytest.importorskip("bitsandbytes.functional")
    w = torch.randn(96, 128, generator=torch.Generator().manual_seed(0))
    q, state = bnbf.quantize_4bit(w, blocksize=64, quant_type="nf4")
    ref = bnbf.dequantize_4bit(q, state, blocksize=64, quant_type="nf4")
    assert (nf4_roundtrip(w) - ref).abs().max().item() < 1e-5
    assert torch.equal(absmax_roundtrip(w, 2).view(-1, 64).abs().amax(1), w.view(-1, 64).abs().amax(1))
    assert len(torch.unique(absmax_roundtrip(w, 2)[0, :64])) <= 3 and len(torch.unique(absmax_roundtrip(w, 4)[0, :64])) <= 15


def test_fp4_and_integer_round_trips_match_peftlab_quant():
    """The LM probe's own FP4 / NF4 / INT round trips equal peftlab.quant's bitsandbytes-exact ones."""
    import torch

    from peftlab import quant
    from peftlab.datagen.lmprobe import FP4_CODE, HELDOUT_QUANTIZERS, NF4_CODE

    assert torch.equal(FP4_CODE, torch.unique(quant.code_book("fp4")))
    assert torch.allclose(NF4_CODE, quant.code_book("nf4"))
    w = torch.randn(96, 256, generator=torch.Generator().manual_seed(1)) * 0.05
    for qt in ("nf4", "fp4"):
        packed, st = quant.quantize_4bit(w, 64, qt)
        assert torch.equal(HELDOUT_QUANTIZERS[qt](w), quant.dequantize_4bit(packed, st)), qt
    for bits in (2, 3, 4):
        q, st = quant.quantize_absmax(w, bits, 64)
        assert torch.allclose(HELDOUT_QUANTIZERS[f"int{bits}"](w), quant.dequantize_absmax(q, st), atol=1e-7), bits


def test_heldout_quantization_table_on_a_random_llama():
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from peftlab import models
    from peftlab.datagen.lmprobe import HELDOUT_PAIRS, HELDOUT_QUANTIZERS, heldout_quantization

    tok = models.load_tokenizer("causal_lm", profile="tiny")
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                         num_key_value_heads=2, intermediate_size=64, pad_token_id=tok.pad_token_id))
    before = {n: p.clone() for n, p in model.state_dict().items()}
    lines = ["연기가 좋았다.", "지루했다.", "배우 호흡이 좋아서 끝까지 봤다.", "별점 1점."] * 5
    t = heldout_quantization(model, tok, lines, boot=200, log=lambda s: None)
    assert all(torch.equal(before[n], p) for n, p in model.state_dict().items()), "weights not restored"
    assert t["lines"] == 20 and set(t["quantizers"]) == set(HELDOUT_QUANTIZERS)
    assert set(t["differences"]) == {f"{a}-{b}" for a, b in HELDOUT_PAIRS}
    for q in t["quantizers"].values():
        assert q["ci95"][0] <= q["increase_pct"] <= q["ci95"][1]
        assert abs(q["first_order_pct"] + q["second_order_pct"] - q["increase_pct"]) < 2e-3
    rmse = {k: v["weight_rmse"] for k, v in t["quantizers"].items()}
    assert rmse["int2"] > rmse["int3"] > rmse["int4"] > rmse["nf4"] > 0


def test_lm_targets_read_the_heldout_and_qr_tables():
    from peftlab.datagen.targets import check

    held = {"quantizers": {"nf4": {"increase_pct": 1.0, "ci95": [0.8, 1.2]}},
            "differences": {"int2-int3": {"ci95": [3.0, 4.0]}, "int3-int4": {"ci95": [0.5, 0.9]},
                            "nf4-fp4": {"ci95": [-0.4, -0.1]}, "nf4-int4": {"ci95": [-0.2, 0.05]}}}
    qr = {"int3_minus_int16": {"z": 4.2}, "int3_minus_chosen": {"z": 2.5}}
    rows = {r["target"]: r for r in check(None, {"heldout": held, "qr_headroom": qr, "runs": []})}
    assert rows["lm.heldout_nf4"]["ok"] and rows["lm.heldout_bits"]["ok"] and rows["lm.heldout_nf4_fp4"]["ok"]
    assert not rows["lm.heldout_nf4_int4"]["ok"] and rows["lm.qr_3bit_gap"]["ok"] and not rows["lm.qr_mixed_gain"]["ok"]
    assert rows["lm.qr_mixed_gain"]["enforced"]  # a build whose searches cannot beat uniform 3-bit fails
    held["quantizers"]["nf4"] = {"increase_pct": 5.5, "ci95": [5.2, 5.8]}
    assert not {r["target"]: r for r in check(None, {"heldout": held})}["lm.heldout_nf4"]["ok"]


def test_sentiment_splits_are_balanced_disjoint_and_short(sentiment):
    sizes = {s: len(rows) for s, rows in sentiment.items()}
    assert sizes == {"train": 3000, "valid": 500, "test": 2000, "heldout_lexicon": 1000}
    texts = [r["text"] for rows in sentiment.values() for r in rows]
    assert len(set(texts)) == len(texts), "a text occurs twice (within or across splits)"
    for split, rows in sentiment.items():
        counts = Counter(r["label"] for r in rows)
        assert counts[0] == counts[1] == len(rows) // 2, (split, counts)
        assert all(set(r) == {"text", "label"} for r in rows)
        assert all(5 <= len(r["text"].split()) <= 25 for r in rows)


def _words(text: str) -> set[str]:
    return set(re.findall(r"\w+", text))


def _best_single_token_accuracy(rows, tokenize) -> tuple[float, str]:
    """Accuracy of the best rule 'label = [token present]' or 'label = [token absent]' on ``rows``."""
    n = len(rows)
    pos = sum(r["label"] for r in rows)
    present_pos, present_all = Counter(), Counter()
    for r in rows:
        for t in tokenize(r["text"]):
            present_all[t] += 1
            present_pos[t] += r["label"]
    best, best_tok = 0.5, ""
    for t, k in present_all.items():
        # "present → 1": correct = present&pos + absent&neg
        acc = (present_pos[t] + (n - pos) - (k - present_pos[t])) / n
        for a in (acc, 1 - acc):
            if a > best:
                best, best_tok = a, t
    return best, best_tok


def test_no_single_token_solves_the_task(sentiment, root):
    from transformers import AutoTokenizer

    # Even the best token chosen on the test set itself (an upper bound for any rule picked on train).
    acc, tok = _best_single_token_accuracy(sentiment["test"], _words)
    assert acc < 0.75, f"word {tok!r} alone reaches {acc:.3f}"
    wp = AutoTokenizer.from_pretrained(root / "models" / "tiny-ko-bert")
    acc, tok = _best_single_token_accuracy(sentiment["test"], lambda t: set(wp.tokenize(t)))
    assert acc < 0.75, f"WordPiece token {tok!r} alone reaches {acc:.3f}"


def test_negation_and_contrast_are_present(sentiment):
    texts = [r["text"] for r in sentiment["train"]]
    share = lambda pat: sum(bool(re.search(pat, t)) for t in texts) / len(texts)  # noqa: E731
    assert share(r"지 (않|못)|(^| )안 ") > 0.2
    assert share(r"지만|는데") > 0.3


def test_text_generators_are_deterministic():
    a = make_splits({"train": 50, "test": 20}, seed=5)
    b = make_splits({"train": 50, "test": 20}, seed=5)
    assert a == b
    assert make_corpus(300, seed=3) == make_corpus(300, seed=3)
    assert make_instructions({"train": 40, "test": 10}, seed=2) == make_instructions({"train": 40, "test": 10}, seed=2)
    assert make_splits({"train": 50}, seed=6)["train"] != a["train"]


def test_shipped_text_is_what_the_generator_makes(root, manifest):
    cfg = BuildConfig()
    text = generate_text(cfg)
    for split in ("test", "heldout_lexicon"):
        assert [r["text"] for r in pdata.read_jsonl(root / "sentiment" / f"{split}.jsonl")] == \
            [r.text for r in text["sentiment"][split]]
    assert pdata.load_corpus() == text["corpus"]
    assert (root / "corpus" / "ko_world.txt").read_text(encoding="utf-8").splitlines() == text["world"]
    assert pdata.read_jsonl(root / "instructions" / "train.jsonl") == text["instructions"]["train"]


def test_corpus_never_contains_a_test_sentence(sentiment):
    corpus = set(pdata.load_corpus())
    assert 20_000 <= len(corpus) <= 60_000
    for r in sentiment["test"] + sentiment["valid"] + sentiment["heldout_lexicon"]:
        assert r["text"] not in corpus
        for s in split_sentences(r["text"]):
            assert s not in corpus, s


def _stems_in(text: str) -> set[str]:
    """Held-out predicates used in ``text``, found by their stem without its last syllable, which every
    inflection keeps (흡족하 → 흡족합니다, 경이롭 → 경이로웠다, 신파적이 → 신파적입니다)."""
    from peftlab.datagen.lexicon import HELDOUT_STEMS

    return {st for st in HELDOUT_STEMS if re.search(r"(^|[ ,.])" + re.escape(st[:-1]), text)}


def test_heldout_lexicon_is_only_in_pretraining_and_its_own_split(sentiment):
    for split in ("train", "valid", "test"):
        hits = [r["text"] for r in sentiment[split] if _stems_in(r["text"])]
        assert not hits, (split, hits[:3])
    assert all(_stems_in(r["text"]) for r in sentiment["heldout_lexicon"])
    corpus = "\n".join(pdata.load_corpus())
    from peftlab.datagen.lexicon import HELDOUT_STEMS

    assert all(corpus.count(st) >= 20 for st in HELDOUT_STEMS), "a held-out word is (nearly) absent from pretraining"


def test_heldout_knowledge_lines_are_new_sentences_about_known_facts(root):
    world = (root / "corpus" / "ko_world.txt").read_text(encoding="utf-8").splitlines()
    held = pdata.load_world_heldout()
    assert len(held) >= 100 and len(set(held)) == len(held) and not set(held) & set(world)
    from peftlab.datagen.build import BuildConfig
    from peftlab.datagen.world import make_people

    names = {p.name for p in make_people(BuildConfig().people, seed=BuildConfig().seeds["world"])}
    assert sum(any(n in line for n in names) for line in held) > len(held) / 2  # mostly biographies, as the training text


def test_pretraining_text_is_never_instruction_formatted(root):
    for name in ("ko_corpus.txt", "ko_world.txt", "ko_world_heldout.txt"):
        text = (root / "corpus" / name).read_text(encoding="utf-8")
        assert "질문:" not in text and "답:" not in text, name


def _person_of(question: str) -> str:
    return re.match(r"[가-힣]+?(?=[은는이가의] )", question).group(0)


def _instruction_subject(row: dict) -> str:
    """The person, word, country or antonym pair a row asks about."""
    from peftlab.datagen.lexicon import ANTONYMS

    q, task = row["instruction"], row["task"]
    if task == "person":
        return _person_of(q)
    if task == "category":
        return q.split(": ")[1] if ": " in q else re.match(r"(.+?)[은는] ", q).group(1)
    if task == "capital":
        return q.split(": ")[1] if ": " in q else re.match(r"(.+?)(?:의 수도|[은는] 수도)", q).group(1)
    if task == "country":  # the country whose capital the question names: the item both directions share
        return row["output"]
    word = re.match(r"'(.+?)'", q).group(1)
    return next("/".join(p) for p in ANTONYMS if word in p)


def test_instruction_splits_ask_about_disjoint_items_the_corpus_states(root):
    from peftlab.datagen.instructions import SOURCE, TASKS
    from peftlab.datagen.lexicon import ANTONYMS, CAPITALS, CATEGORIES
    from peftlab.datagen.world import make_people

    ds = pdata.load_instructions()
    assert set(ds) == {"train", "test"}
    assert not set(ds["train"]["instruction"]) & set(ds["test"]["instruction"])
    cfg = BuildConfig()
    people = {p.name: p for p in make_people(cfg.people, seed=cfg.seeds["world"])}
    world = (root / "corpus" / "ko_world.txt").read_text(encoding="utf-8").splitlines()
    capitals, opposite = dict(CAPITALS), {**dict(ANTONYMS), **{b: a for a, b in ANTONYMS}}
    subject: dict[tuple[str, str], set[str]] = {}
    answers: dict[str, dict[str, set[str]]] = {"train": {}, "test": {}}
    for split in ("train", "test"):
        for row in ds[split]:
            q, a, task = row["instruction"], row["output"], row["task"]
            assert " " not in a and a and "'" not in a, row
            assert task in TASKS, row
            if task == "person":
                p = people[_person_of(q)]
                assert a == {"살": p.city, "도시": p.city, "직업": p.job, "일을": p.job, "과일": p.fruit,
                             "동물": p.pet, "반려동물": p.pet}[next(k for k in ("반려동물", "과일", "동물", "직업", "일을",
                                                                               "도시", "살") if k in q)], row
            elif task == "category":
                assert (a, _instruction_subject(row)) in {(c, w) for c, ws in CATEGORIES for w in ws}, row
            elif task == "capital":
                assert capitals[_instruction_subject(row)] == a, row
            elif task == "country":
                cap = re.escape(capitals[a])
                assert re.search(rf"(^|수도가 ){cap}(은|는|이|가|인) |: {cap}$", q), row
            else:
                assert opposite[re.match(r"'(.+?)'", q).group(1)] == a, row
            subject.setdefault((SOURCE[task], _instruction_subject(row)), set()).add(split)
            answers[split].setdefault(task, set()).add(a)
    both = [k for k, v in subject.items() if len(v) > 1]
    assert not both, f"asked about in both splits: {both[:5]}"
    for task in ("capital", "antonym", "country"):  # test answers never train answers: knowledge, not a guess
        assert not answers["test"][task] & answers["train"][task], task
    # every fact a test question asks about is stated in the knowledge corpus
    for row in ds["test"]:
        if row["task"] == "person":
            name = _person_of(row["instruction"])
            assert any(name in line and row["output"] in line for line in world), row
        elif row["task"] in ("capital", "antonym", "country"):
            if row["task"] == "antonym":
                x, y = _instruction_subject(row).split("/")
            elif row["task"] == "capital":
                x, y = _instruction_subject(row), row["output"]
            else:
                x, y = capitals[row["output"]], row["output"]
            assert any(x in line and y in line for line in world), row
    assert pdata.format_instruction("3 더하기 4는?", "7") == "질문: 3 더하기 4는?\n답: 7"


def test_instruction_mix_of_the_default_build():
    """≥ 4 task types with ≥ 40 test rows each; every task gets its full share (no task runs out of items)."""
    from peftlab.datagen.instructions import MIX, TASKS
    from peftlab.datagen.world import make_people

    cfg = BuildConfig()
    ins = make_instructions(cfg.instruction_sizes, seed=cfg.seeds["instructions"],
                            people=make_people(cfg.people, seed=cfg.seeds["world"]))
    for split, size in cfg.instruction_sizes.items():
        rows = [r for r in ins[split] if r.get("phrasing", "train") == "train"]
        counts = Counter(r["task"] for r in rows)
        assert counts == {t: round(MIX[t] * size) for t in TASKS} and len(rows) == size, (split, counts)
    new = Counter(r["task"] for r in ins["test"] if r["phrasing"] == "new")
    assert set(new) == set(TASKS) and all(new[t] <= round(MIX[t] * cfg.instruction_sizes["test"]) for t in TASKS), new
    assert {r.get("phrasing") for r in ins["train"]} == {None} and {r["phrasing"] for r in ins["test"]} == {"train", "new"}
    test = Counter(r["task"] for r in ins["test"])
    assert len(test) >= 4 and min(test.values()) >= 40, test
    # the new phrasings leave every other row as it was: without them, train and the train-phrased test rows match
    plain = make_instructions(cfg.instruction_sizes, seed=cfg.seeds["instructions"],
                              people=make_people(cfg.people, seed=cfg.seeds["world"]), new_phrasings=False)
    assert plain["train"] == ins["train"]
    assert sorted(map(str, plain["test"])) == sorted(str({k: v for k, v in r.items() if k != "phrasing"})
                                                    for r in ins["test"] if r["phrasing"] == "train")


def test_new_phrasings_are_templates_no_train_question_uses():
    from peftlab.datagen import instructions as I
    from peftlab.datagen.world import make_people

    person = make_people(1, seed=0)[0]
    item = {"person": person, "category": ("사과", "과일"), "capital": ("프랑스", "파리"), "country": ("프랑스", "파리"),
            "antonym": ("크다", "작다")}
    seen = {"person": I.person_questions, "category": lambda wc: I.category_questions(*wc),
            "capital": lambda cc: I.capital_questions(*cc), "country": lambda cc: I.country_questions(*cc),
            "antonym": lambda ab: I.antonym_questions(*ab)}
    for task in I.TASKS:
        old, new = seen[task](item[task]), I.NEW_PHRASINGS[task](item[task])
        assert new and not {q for q, _ in old} & {q for q, _ in new}, task
        assert {a for _, a in new} <= {a for _, a in old}, task  # same facts, other words


def test_data_card_states_what_the_instruction_files_hold(root, manifest):
    card = (root / "README.md").read_text(encoding="utf-8")
    line = next(ln for ln in card.splitlines() if ln.startswith("| `instructions/"))
    files = {s: Counter(r["task"] for r in pdata.read_jsonl(root / "instructions" / f"{s}.jsonl")) for s in ("train", "test")}
    stated = {t: (int(a), int(b)) for t, a, b in re.findall(r"`(\w+)` (\d+)/(\d+)", line)}
    assert stated == {t: (files["train"][t], files["test"][t]) for t in files["train"] | files["test"]}, line
    assert f"{sum(files['train'].values())}/{sum(files['test'].values())} rows" in line, line
    assert len(files["test"]) >= 4 and min(files["test"].values()) >= 40, files["test"]
    base = manifest["metrics"]["causal_lm"]["base"]
    assert base["n_by_task"] == dict(sorted(files["test"].items()))  # what the build measured is what ships


def test_shipped_tokenizer_is_what_the_builder_makes(root):
    """The vocabulary is rebuilt deterministically from the shipped text (no hash-order ties)."""
    from peftlab.datagen import lexicon as L
    from peftlab.datagen.tokenizer import train_wordpiece
    from peftlab.datagen.world import make_people

    cfg = BuildConfig()
    corpus = pdata.load_corpus()[: -cfg.heldout_lines]
    world = (root / "corpus" / "ko_world.txt").read_text(encoding="utf-8").splitlines()
    instr = [pdata.format_instruction(r["instruction"], r["output"])
             for r in pdata.read_jsonl(root / "instructions" / "train.jsonl")]
    people = make_people(cfg.people, seed=cfg.seeds["world"])
    wp = train_wordpiece(corpus + world + instr, cfg.vocab_size, keep_words=[*L.ENTITY_WORDS, *(p.name for p in people)],
                         suffixes=L.ENTITY_SUFFIXES)
    shipped = json.loads((root / "models" / "tiny-ko-bert" / "tokenizer.json").read_text(encoding="utf-8"))
    assert wp.get_vocab() == shipped["model"]["vocab"]


def test_tokenizer_keeps_entities_whole(root):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(root / "models" / "tiny-ko-llama")
    assert tok.tokenize("고슴도치이다") == ["고슴도치", "##이다"]
    assert tok.tokenize("서울에 산다") [:2] == ["서울", "##에"]


def test_load_sentiment_as_datasetdict():
    ds = pdata.load_sentiment()
    assert set(ds) == {"train", "validation", "test"}
    assert ds["train"].column_names == ["text", "label"]
    assert ds.num_rows == {"train": 3000, "validation": 500, "test": 2000}


def test_missing_data_root_names_path_and_command(tmp_path, monkeypatch):
    monkeypatch.setenv("PEFTLAB_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match=r"nowhere.*make data"):
        pdata.load_sentiment()


def test_quick_build_end_to_end(tmp_path, monkeypatch):
    from peftlab import models
    from peftlab.datagen.__main__ import main

    assert main(["--out", str(tmp_path), "--quick"]) == 0
    manifest = json.loads((tmp_path / "MANIFEST.json").read_text(encoding="utf-8"))
    assert "--quick" in manifest["command"]
    monkeypatch.setenv("PEFTLAB_DATA", str(tmp_path))
    monkeypatch.setenv("PEFTLAB_PROFILE", "tiny")
    assert pdata.load_sentiment().num_rows["test"] == 100
    tok = models.load_tokenizer("encoder")
    clf = models.load_encoder_classifier(num_labels=2)
    out = clf(**tok(["연기가 좋았다.", "지루했다."], padding=True, return_tensors="pt"))
    assert tuple(out.logits.shape) == (2, 2)
    lm = models.load_causal_lm()
    ltok = models.load_tokenizer("causal_lm")
    assert lm(**ltok(["질문: 1 더하기 2는?"], return_tensors="pt")).logits.shape[-1] == len(ltok)
