"""The language-model workloads: ELI5-Category loading (files, the datasets download, tokenizers, cache),
the GPT-2 model under both runners, and the offline pydoc workload training on real text."""

from __future__ import annotations

import json
import math
import sys
import textwrap

import numpy as np
import pytest
import torch

from surge import workloads
from surge.engine import GroupConfig, OptimizerConfig, run_group
from surge.engine.trainer import lockstep_supported
from surge.errors import SurgeError
from surge.workloads import eli5, get_workload
from surge.workloads.eli5 import distilgpt2_eli5, eli5_document, find_text_files, gpt2_pydoc, read_documents
from surge.workloads.lm_gpt2 import GPT2CausalLM, gpt2_param_count, lm_loss, pack_sequences, train_bpe

pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

WORDS = (
    "the water cold warm sun light because energy atoms move faster heat when you why does air "
    "pressure sound travels through wave ear brain signal cells body blood oxygen plants grow"
).split()
TINY = {"size": "tiny", "seq_len": 16, "tokenizer": "bpe", "bpe_vocab": 300, "probe_size": 16}


@pytest.fixture(autouse=True)
def _fresh_cache():
    workloads.clear_cache()
    yield
    workloads.clear_cache()


def _sentence(rng, n):
    return " ".join(rng.choice(WORDS, size=n)).capitalize() + "."


def _records(n=40, seed=0):
    """ELI5-Category-shaped records: title, selftext, answers {a_id, text, score}, category."""
    rng = np.random.default_rng(seed)
    return [
        {
            "q_id": f"q{i}",
            "title": "Why " + _sentence(rng, 6),
            "selftext": _sentence(rng, 8) if i % 3 else "",
            "category": "Physics",
            "answers": {
                "a_id": [f"a{i}_{j}" for j in range(2)],
                "text": [_sentence(rng, 25) for _ in range(2)],
                "score": [5, 2],
            },
        }
        for i in range(n)
    ]


def _write_jsonl(path, records):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")


def _no_gpt2(monkeypatch):
    import transformers

    def refuse(*a, **k):
        raise OSError("We couldn't connect to 'https://huggingface.co' to load the files")

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", refuse)


# ---- records, files, packing ------------------------------------------------------------------------


def test_eli5_document_takes_title_body_and_every_answer():
    rec = {"title": "Why is the sky blue?", "selftext": " ", "answers": {"text": ["Rayleigh.", "Light scatters."]}}
    assert eli5_document(rec) == "Why is the sky blue?\n\nRayleigh.\n\nLight scatters."
    assert (
        eli5_document({"title": "T", "selftext": "B", "answers": [{"text": "A1"}, {"text": "A2"}]})
        == "T\n\nB\n\nA1\n\nA2"
    )
    assert eli5_document({"title": "T", "answers.text": ["A"]}) == "T\n\nA"  # a flattened dataset
    assert eli5_document({"text": " plain "}) == "plain"


def test_train_files_are_preferred_and_cache_is_skipped(tmp_path):
    root = tmp_path / "eli5_category"
    for name in (
        "train.jsonl",
        "data/train-00001.parquet",
        "validation1.jsonl",
        "restraint.txt",
        "cache/tokens.json",
        "notes.md",
    ):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("{}")
    assert [p.relative_to(root).as_posix() for p in find_text_files(root)] == [
        "data/train-00001.parquet",
        "train.jsonl",
    ]
    (root / "train.jsonl").unlink()
    (root / "data" / "train-00001.parquet").unlink()
    assert [p.name for p in find_text_files(root)] == ["restraint.txt", "validation1.jsonl"]
    assert find_text_files(tmp_path / "missing") == []


def test_pack_sequences_are_shifted_views():
    tokens = torch.arange(23, dtype=torch.int32)
    x, y = pack_sequences(tokens, 5)
    assert x.shape == y.shape == (4, 5)  # (23 - 1) // 5
    assert x[1].tolist() == [5, 6, 7, 8, 9] and y[1].tolist() == [6, 7, 8, 9, 10]
    assert x.untyped_storage().data_ptr() == tokens.untyped_storage().data_ptr()
    with pytest.raises(ValueError, match="the corpus has 5 tokens: too few for one sequence of 5 \\(\\+1\\) tokens"):
        pack_sequences(tokens[:5], 5)
    with pytest.raises(ValueError, match="tokens must be a 1-D stream, got shape \\(2, 3\\)"):
        pack_sequences(torch.zeros(2, 3), 2)


def test_jsonl_and_parquet_give_the_same_workload(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    records = _records()
    _write_jsonl(tmp_path / "a" / "eli5_category" / "train.jsonl", records)
    _write_jsonl(tmp_path / "a" / "eli5_category" / "validation1.jsonl", _records(5, seed=9))  # not read
    (tmp_path / "b" / "eli5_category" / "data").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(records), tmp_path / "b" / "eli5_category" / "data" / "train-00000.parquet")
    a = distilgpt2_eli5(str(tmp_path / "a"), **TINY)
    b = distilgpt2_eli5(str(tmp_path / "b"), **TINY)
    assert torch.equal(a.train_inputs, b.train_inputs) and torch.equal(a.probe_targets, b.probe_targets)
    assert a.metadata["n_documents"] == 40 and a.metadata["tokenizer"] == "bpe-local-300"
    assert a.batch_unit == "sequences" and a.metadata["tokens_per_sequence"] == 16
    assert a.extra_steps == 50 and a.default_targets == (7.0, 6.5, 6.0)
    assert a.train_inputs.shape[1] == 16 and torch.equal(a.train_inputs[:, 1:], a.train_targets[:, :-1])
    assert len(a.probe_inputs) == 16 and a.metadata["n_params"] == sum(p.numel() for p in a.make_model().parameters())
    # the token stream is cached: a second load neither reads the files' text nor trains a tokenizer
    cached = list((tmp_path / "a" / "eli5_category" / "cache").glob("tokens-bpe300-*.npy"))
    assert len(cached) == 1
    workloads.clear_cache()
    with pytest.MonkeyPatch.context() as m:
        m.setattr(eli5, "train_bpe", lambda *a, **k: pytest.fail("retrained"))
        m.setattr(eli5, "read_documents", lambda *a, **k: pytest.fail("re-read"))
        again = distilgpt2_eli5(str(tmp_path / "a"), **TINY)
    assert torch.equal(again.train_inputs, a.train_inputs)


def test_plain_text_files_are_documents(tmp_path):
    root = tmp_path / "eli5_category"
    root.mkdir()
    rng = np.random.default_rng(1)
    for i in range(3):
        (root / f"part{i}.txt").write_text("\n".join(_sentence(rng, 30) for _ in range(20)))
    assert len(read_documents(find_text_files(root))) == 3
    wl = distilgpt2_eli5(str(tmp_path), **TINY)
    assert wl.metadata["n_documents"] == 3 and wl.metadata["files"] == ["part0.txt", "part1.txt", "part2.txt"]


def test_datasets_download_is_saved_and_the_local_bpe_is_used_offline(tmp_path, monkeypatch):
    import datasets

    calls = []

    def fake_load(path, split=None, **kw):
        calls.append((path, split, kw))
        if not kw:  # the Hub copy is a loading script: datasets >= 4 refuses it
            raise RuntimeError("Dataset scripts are no longer supported, but found eli5_category.py")
        return datasets.Dataset.from_list(_records())

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    _no_gpt2(monkeypatch)
    with pytest.warns(
        RuntimeWarning, match="the GPT-2 tokenizer could not be fetched \\(OSError\\); training a byte-level BPE"
    ):
        wl = get_workload("surge.workloads.eli5:distilgpt2_eli5", data_dir=str(tmp_path))
    assert calls == [
        ("rexarski/eli5_category", "train", {}),
        ("rexarski/eli5_category", "train", {"revision": "refs/convert/parquet"}),
    ]
    assert (tmp_path / "eli5_category" / "train.parquet").is_file()
    assert wl.metadata["files"] == ["train.parquet"] and wl.metadata["n_documents"] == 40
    assert wl.metadata["tokenizer"].startswith("bpe-local-") and wl.metadata["size"] == "small"
    assert wl.metadata["tokens_per_sequence"] == 128


def test_download_failure_says_where_to_put_the_files(tmp_path, monkeypatch):
    import datasets

    def offline(*a, **k):
        raise ConnectionError("Couldn't reach 'rexarski/eli5_category' on the Hub (LocalEntryNotFoundError)")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(
        FileNotFoundError,
        match="ELI5-Category is not in .*eli5_category and could not be downloaded \\(ConnectionError: Couldn't reach",
    ):
        distilgpt2_eli5(str(tmp_path), **TINY)
    with pytest.raises(FileNotFoundError, match="no ELI5-Category files \\(.jsonl, .json, .parquet, .txt\\) in"):
        distilgpt2_eli5(str(tmp_path), download=False, **TINY)


def test_gpt2_tokenizer_when_it_can_be_fetched(tmp_path, monkeypatch):
    """A mocked fetch returns a real transformers fast tokenizer; the record says 'gpt2'."""
    import transformers

    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=train_bpe([eli5_document(r) for r in _records(20, seed=3)], 400).tokenizer,
        eos_token="<|endoftext|>",
    )
    monkeypatch.setattr(
        transformers.AutoTokenizer, "from_pretrained", lambda name, **k: fast if name == "gpt2" else None
    )
    _write_jsonl(tmp_path / "eli5_category" / "train.jsonl", _records())
    wl = distilgpt2_eli5(str(tmp_path), size="tiny", seq_len=16, probe_size=8)
    assert wl.metadata["tokenizer"] == "gpt2" and wl.metadata["vocab_size"] == len(fast)
    first = eli5_document(_records()[0])
    assert wl.train_inputs[0].tolist() == fast(first)["input_ids"][:16]
    # cached: "auto" takes the GPT-2 stream without fetching again; "gpt2" on new data must fetch
    _no_gpt2(monkeypatch)
    _write_jsonl(tmp_path / "fresh" / "eli5_category" / "train.jsonl", _records(5))
    workloads.clear_cache()
    assert torch.equal(
        distilgpt2_eli5(str(tmp_path), size="tiny", seq_len=16, probe_size=8).train_inputs, wl.train_inputs
    )
    with pytest.raises(OSError, match="the GPT-2 tokenizer could not be fetched \\(OSError: We couldn't connect"):
        distilgpt2_eli5(str(tmp_path / "fresh"), tokenizer="gpt2")


def test_argument_and_file_errors(tmp_path, monkeypatch):
    _write_jsonl(tmp_path / "eli5_category" / "train.jsonl", _records(3))
    with pytest.raises(ValueError, match="size must be one of 'tiny', 'small', 'distilgpt2'; got 'huge'"):
        distilgpt2_eli5(str(tmp_path), size="huge")
    with pytest.raises(ValueError, match="tokenizer must be one of 'auto', 'gpt2', 'bpe'; got 'spm'"):
        distilgpt2_eli5(str(tmp_path), tokenizer="spm")
    with pytest.raises(ValueError, match="seq_len must be >= 2, got 1"):
        distilgpt2_eli5(str(tmp_path), **{**TINY, "seq_len": 1})
    bad = tmp_path / "bad" / "eli5_category"
    bad.mkdir(parents=True)
    (bad / "train.jsonl").write_text('{"title": "ok"}\n{not json\n')
    with pytest.raises(ValueError, match="train.jsonl: line 2 is not JSON .*; expected one record per line"):
        distilgpt2_eli5(str(tmp_path / "bad"), **TINY)
    (bad / "train.jsonl").write_text("[1, 2]")
    with pytest.raises(ValueError, match="records must be JSON objects, got int"):
        distilgpt2_eli5(str(tmp_path / "bad"), **TINY)
    for name, content, match in [  # every malformed file is a SurgeError naming it (were raw exceptions)
        ("train.json", b'[{"title": "a"}, {not json]', r"train.json: not a JSON array \(line 1, column 19"),
        ("train.jsonl", b'{"title": "caf\xe9"}\n', r"train.jsonl: not UTF-8 text \(byte 14"),
        ("train.txt", b"\xff\xfe text", r"train.txt: not UTF-8 text \(byte 0"),
        ("train.parquet", b"PAR1 not really", r"train.parquet: not a readable Parquet file"),
    ]:
        for old in bad.iterdir():
            old.unlink()
        (bad / name).write_bytes(content)
        with pytest.raises(SurgeError, match=match):
            read_documents([bad / name])
    for old in bad.iterdir():
        old.unlink()
    (bad / "train.jsonl").write_text('{"title": " ", "answers": {"text": []}}\n')
    with pytest.raises(ValueError, match="no text found in .*train.jsonl: expected ELI5-Category records"):
        distilgpt2_eli5(str(tmp_path / "bad"), **TINY)
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(ModuleNotFoundError, match="need the 'transformers' package .*pip install 'surge\\[lm\\]'"):
        GPT2CausalLM.from_size("tiny", vocab_size=10, seq_len=4, eos_id=0)


def test_tokenizer_and_download_errors(tmp_path, monkeypatch):
    import datasets
    import transformers

    from surge.workloads.lm_gpt2 import TextTokenizer, encode_documents, gpt2_tokenizer

    bad = TextTokenizer(tag="t", vocab_size=10, eos_id=0, encode_batch=lambda texts: [[3, 12] for _ in texts])
    with pytest.raises(ValueError, match="tokenizer 't' produced ids outside \\[0, 10\\)"):
        encode_documents(["a"], bad)

    class NoEos:
        eos_token_id = None

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", lambda name, **k: NoEos())
    with pytest.raises(ValueError, match="the 'gpt2' tokenizer has no eos_token_id"):
        gpt2_tokenizer()
    monkeypatch.setattr(
        datasets, "load_dataset", lambda *a, **k: datasets.Dataset.from_list([{"title": "t", "body": "b"}])
    )
    with pytest.raises(
        ValueError, match="dataset 'rexarski/eli5_category' has no 'answers' column \\(columns: title, body\\)"
    ):
        distilgpt2_eli5(str(tmp_path), **TINY)


# ---- the model --------------------------------------------------------------------------------------


def test_model_layout_and_hf_compatibility():
    assert gpt2_param_count("distilgpt2", 50257, 1024) == 81_912_576  # DistilGPT2's published 82M
    torch.manual_seed(0)
    model = GPT2CausalLM.from_size("tiny", vocab_size=97, seq_len=12, eos_id=0)
    assert sum(p.numel() for p in model.parameters()) == gpt2_param_count("tiny", 97, 12)
    assert list(model.buffers()) == [] and lockstep_supported(model) == (True, "")
    torch.manual_seed(0)
    same = GPT2CausalLM.from_size("tiny", vocab_size=97, seq_len=12, eos_id=0)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), same.parameters()))
    ids = torch.randint(0, 97, (3, 12))
    logits = model(ids.to(torch.int32))
    assert logits.shape == (3, 12, 97)
    hf = model.to_hf()
    assert torch.allclose(hf(input_ids=ids).logits, logits, atol=1e-6)  # same weights in HF's layout
    # HF's own LM head model ties lm_head to wte: the lockstep runner refuses it rather than untie it
    ok, why = lockstep_supported(hf)
    assert not ok and why == "the model shares a parameter between modules (tied weights)"
    loss = lm_loss(logits[:, :-1], ids[:, 1:]).detach()
    assert torch.allclose(loss, torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), ids[:, 1:]))
    assert abs(float(loss) - math.log(97)) < 0.1  # GPT-2's initialisation: near-uniform next-token predictions


def _tiny_group(tmp_path, **kw):
    _write_jsonl(tmp_path / "eli5_category" / "train.jsonl", _records())
    module = tmp_path / "surge_eli5_tiny_wl.py"
    module.write_text(
        textwrap.dedent(f"""
        from surge.workloads.eli5 import distilgpt2_eli5

        def make(data_dir=None):
            return distilgpt2_eli5(data_dir, **{TINY!r})
    """)
    )
    return dict(workload="surge_eli5_tiny_wl:make", data_dir=str(tmp_path), **kw)


def test_lockstep_and_loop_agree_in_float64(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    base = _tiny_group(tmp_path)
    results = {}
    for strategy in ("lockstep", "loop"):
        results[strategy] = run_group(
            GroupConfig(
                **base,
                optimizer=OptimizerConfig("adam", betas=(0.9, 0.999)),
                batch_size=4,
                lrs=(1e-3, 3e-3),
                seeds=(0, 0),
                target_losses=(5.0, 4.5),
                extra_steps=3,
                max_steps=24,
                dtype="float64",
                strategy=strategy,
                workers=1,
                probe_interval=4,
            )
        )
    for a, b in zip(results["lockstep"], results["loop"]):
        assert a.strategy == "lockstep" and b.strategy == "loop"
        assert abs(a.initial_loss - b.initial_loss) < 1e-12 and abs(a.final_loss - b.final_loss) < 1e-10
        assert all(s.reached for s in a.stages) and [s.steps for s in a.stages] == [s.steps for s in b.stages]
        assert all(abs(s.loss_decrease - t.loss_decrease) < 1e-10 for s, t in zip(a.stages, b.stages))
        assert a.final_loss < a.initial_loss - 1.0
    sys.modules.pop("surge_eli5_tiny_wl", None)


def test_default_configuration_trains_a_few_steps(tmp_path, monkeypatch):
    """The registered defaults (size 'small', 128-token sequences, tokenizer 'auto' -> local BPE offline)."""
    _write_jsonl(tmp_path / "eli5_category" / "train.jsonl", _records(60))
    _no_gpt2(monkeypatch)
    with pytest.warns(RuntimeWarning, match="GPT-2 tokenizer could not be fetched"):
        wl = get_workload("distilgpt2-eli5", data_dir=str(tmp_path))
    assert wl.metadata["n_layer"] == 6 and wl.metadata["n_embd"] == 256 and wl.metadata["n_head"] == 4
    res = run_group(
        GroupConfig(
            workload="distilgpt2-eli5",
            data_dir=str(tmp_path),
            optimizer=OptimizerConfig("adam", betas=(0.0, 0.0)),
            batch_size=2,
            lrs=(1e-4, 5e-4),
            seeds=(0, 0),
            target_losses=(0.5,),
            extra_steps=0,
            max_steps=2,
            workers=1,
            probe_examples=4,
        )
    )
    assert [r.strategy for r in res] == ["lockstep"] * 2 and all(r.steps_run == 2 for r in res)
    assert all(r.final_loss < r.initial_loss for r in res)


def test_sweep_run_with_a_spec_file(tmp_path, monkeypatch, capsys):
    from surge.cli.main import main
    from surge.sweep import SweepStore

    monkeypatch.syspath_prepend(str(tmp_path))
    group = _tiny_group(tmp_path)
    spec = tmp_path / "eli5-tiny.toml"
    spec.write_text(
        textwrap.dedent(f"""
        workload = "{group["workload"]}"
        data_dir = "{group["data_dir"]}"
        rounds = 1
        target_loss = [5.0, 4.6]
        extra_steps = 4
        max_steps = 60
        lr = [1e-3, 3e-3]
        batch_size = [4, 8]

        [optimizer]
        name = "adam"
        betas = [0.9, 0.999]
    """)
    )
    assert main(["sweep", "run", str(spec), "--store", str(tmp_path / "s.db"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["total"] == out["done"] == 4 and out["failed"] == 0
    with SweepStore(tmp_path / "s.db", create=False) as st:
        df = st.trials_frame()
    assert (df.batch_unit == "sequences").all() and df.reached.any()
    sys.modules.pop("surge_eli5_tiny_wl", None)


# ---- the offline pydoc workload -----------------------------------------------------------------------


def test_pydoc_workload_trains_on_real_text():
    wl = gpt2_pydoc()
    assert wl.metadata["tokenizer"] == "bpe-local-4096" and wl.metadata["n_documents"] > 50
    assert wl.num_train > 800 and wl.batch_unit == "sequences" and wl.extra_steps == 50
    assert torch.equal(gpt2_pydoc().train_inputs, wl.train_inputs)  # the same corpus and tokenizer every time
    res = run_group(
        GroupConfig(
            workload="gpt2-pydoc",
            optimizer=OptimizerConfig("adam", betas=(0.9, 0.999)),
            batch_size=4,
            lrs=(3e-3,),
            seeds=(0,),
            target_losses=(7.0,),
            extra_steps=5,
            max_steps=48,
            workers=1,
            probe_interval=16,
            probe_examples=16,
        )
    )
    r = res[0]
    assert abs(r.initial_loss - math.log(4096)) < 0.05
    assert r.stages[0].reached and r.final_loss < r.initial_loss - 1.5


def test_a_tokenizer_without_the_eos_token_is_refused():
    import tokenizers
    from tokenizers import models, pre_tokenizers, trainers

    from surge.workloads.lm_gpt2 import bpe_from_tokenizer

    tok = tokenizers.Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.train_from_iterator(["why is the sky blue"], trainer=trainers.BpeTrainer(vocab_size=300, show_progress=False))
    with pytest.raises(SurgeError, match=r"the BPE tokenizer has no <\|endoftext\|> token"):
        bpe_from_tokenizer(tok)
