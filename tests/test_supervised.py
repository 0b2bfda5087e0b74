"""Supervised fine-tuning: batches, loss, schedule and data order by hand; training, resume, CLI and Supervised+PPO."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import yaml

from conftest import FAST, cli_in_process, run_cli
from grue.algorithms import supervised as sft
from grue.algorithms import from_dict, resolve
from grue.yamlfile import load_yaml
from grue.errors import GrueError
from grue.losses import masked_token_ce
from grue.models import load_policy, load_tokenizer
from grue.tasks import imdb
from grue.tasks.common import Example

# ---- a small local IMDB, written here --------------------------------------------------------------

GOOD = ["a wonderful film", "a great story", "a lovely cast", "a fine script", "a moving score"]
BAD = ["a boring film", "a dull story", "a weak cast", "a lazy script", "an awful score"]


def write_reviews(root: Path, n: int = 40) -> Path:
    """``root/imdb/{train,test}.jsonl``: n short reviews, alternately positive (label 1) and negative."""
    rows = []
    for i in range(n):
        pos = i % 2 == 0
        words = GOOD if pos else BAD
        verdict = "I loved it and the ending made me smile" if pos else "I hated it and the ending made me sigh"
        rows.append(
            {
                "text": f"Review {i}: this is {words[i % 5]} with {words[(i + 2) % 5]}, {verdict}, truly {words[(i + 1) % 5]}.",
                "label": int(pos),
            }
        )
    (root / "imdb").mkdir(parents=True)
    for split, part in (("train", rows), ("test", rows[:8])):
        (root / "imdb" / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in part))
    return root


@pytest.fixture(autouse=True)
def one_thread(monkeypatch):
    """Tiny models run fastest on one CPU thread, most of all on cores shared with other work."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # for the CLI subprocesses
    yield
    torch.set_num_threads(n)


@pytest.fixture
def reviews(tmp_path) -> Path:
    return write_reviews(tmp_path / "data")


SMALL = [
    "supervised.batch_size=4",
    "supervised.max_target_tokens=24",
    "supervised.eval_limit=4",
    "supervised.eval_batch_size=4",
    "supervised.log_every=1",
    "generation.max_prompt_tokens=24",
    "generation.max_new_tokens=6",
    "generation.min_new_tokens=6",
]


def config(run: Path, data: Path, epochs: int, *sets: str, model: str = "tiny-gpt2"):
    return resolve(
        "imdb",
        "supervised",
        preset="smoke",
        sets=[f"run.model={model}", *SMALL, *sets],
        flags={"run.output_dir": str(run), "run.data_dir": str(data), "algo.epochs": epochs},
    )


def lines(path: Path) -> list[dict]:
    return [json.loads(l) for l in path.read_text().splitlines()]


def comparable(row: dict) -> dict:
    return {k: v for k, v in row.items() if not k.startswith("time/")}


PROMPT_TARGET = sft.SupervisedConfig(causal_format="prompt_target")

# ---- pure functions, by hand -------------------------------------------------------------------------


def test_causal_batch_has_no_loss_on_prompt_and_padding():
    tok = load_tokenizer("tiny-gpt2")
    items = sft.encode(
        tok, [Example("The acting is", ["great"]), Example("great", ["good film"])], False, PROMPT_TARGET, 32
    )
    prompts, targets = [p for p, _ in items], [t for _, t in items]
    assert prompts == [[729, 456, 378, 684], [73, 688]]
    assert targets == [[2206], [2669, 1760]]  # " great", " good film": a space continues the prompt
    b = sft.causal_sft_batch(prompts, targets, eos_id=1, pad_id=0, max_target_tokens=8)
    assert b["input_ids"].tolist() == [[729, 456, 378, 684, 2206, 1, 0], [0, 0, 73, 688, 2669, 1760, 1]]
    assert b["attention_mask"].tolist() == [[1, 1, 1, 1, 1, 1, 0], [0, 0, 1, 1, 1, 1, 1]]
    assert b["position_ids"].tolist() == [[0, 1, 2, 3, 4, 5, 5], [0, 0, 0, 1, 2, 3, 4]]
    assert b["labels"].tolist() == [[-100, -100, -100, -100, 2206, 1, -100], [-100, -100, -100, -100, 2669, 1760, 1]]
    cut = sft.causal_sft_batch(prompts, targets, eos_id=1, pad_id=0, max_target_tokens=2)
    assert cut["labels"].tolist() == [[-100] * 4 + [2206, 1], [-100] * 4 + [2669, 1760]]  # a cut target gets no EOS


def test_seq2seq_batch_has_no_loss_on_padding():
    tok = load_tokenizer("tiny-t5")
    items = sft.encode(
        tok, [Example("The acting is", ["great"]), Example("great", ["good film"])], True, sft.SupervisedConfig(), 32
    )
    prompts, targets = [p for p, _ in items], [t for _, t in items]
    assert prompts == [[729, 456, 378, 684, 1], [73, 688, 1]] and targets == [[73, 688], [73, 655, 1760]]
    b = sft.seq2seq_sft_batch(prompts, targets, eos_id=1, pad_id=0, decoder_start_id=0, max_target_tokens=8)
    assert b["input_ids"].tolist() == [[729, 456, 378, 684, 1], [73, 688, 1, 0, 0]]
    assert b["attention_mask"].tolist() == [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]
    assert b["labels"].tolist() == [[73, 688, 1, -100], [73, 655, 1760, 1]]
    assert b["decoder_input_ids"].tolist() == [[0, 73, 688, 1], [0, 73, 655, 1760]]


def test_causal_text_batch_is_the_papers_format():
    """RL4LMs' supervised script: prompt + reference as one text (nothing between them, no EOS), loss on every
    token but the first, as the Hugging Face LM collator and GPT-2's own loss computed it
    (RL4LMs 97df0bd rl4lms/envs/text_generation/utils_supervised.py:134-143, 188-193; training_utils.py:299)."""
    tok = load_tokenizer("tiny-gpt2")
    text = sft.SupervisedConfig()
    assert text.causal_format == "text"
    examples = [Example("The acting is", ["great"]), Example("A film", [" that bored me to tears"])]
    items = sft.encode(tok, examples, False, text, 32)
    assert [i for i, _ in items] == tok(["The acting isgreat", "A film that bored me to tears"])["input_ids"]
    assert all(t == [] for _, t in items)
    assert sft.label_count(items, False, 1, text) == sum(len(i) - 1 for i, _ in items)
    b = sft.causal_text_batch([i for i, _ in items], pad_id=0)
    L = max(len(i) for i, _ in items)
    first = items[0][0]
    assert b["input_ids"][0].tolist() == first + [0] * (L - len(first))
    assert b["labels"][0].tolist() == first + [-100] * (L - len(first))
    assert b["position_ids"][0, : len(first)].tolist() == list(range(len(first)))
    # the loss is the model's own language-modelling loss, the paper's Trainer loss
    model = load_policy("tiny-gpt2").eval()
    with torch.no_grad():
        ours = sft.sft_loss(model, b, seq2seq=False)
        theirs = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"], labels=b["labels"]).loss
    assert ours.item() == pytest.approx(theirs.item(), rel=1e-5)
    # a long text is cut on the truncation side (left keeps its end), at max_text_tokens
    long = Example(" ".join(["word"] * 50), [" the very end"])
    ((cut, _),) = sft.encode(tok, [long], False, text, 32, "left", max_text_tokens=8)
    assert len(cut) == 8 and tok.decode(cut).endswith("the very end")


def test_masked_token_ce_by_hand():
    logits = torch.tensor([[[0.0, 0.0], [math.log(3.0), 0.0], [50.0, -50.0]]])
    labels = torch.tensor([[1, 0, -100]])
    # -log(1/2) - log(3/4) over two labelled tokens; the third position carries no loss.
    assert masked_token_ce(logits, labels).item() == pytest.approx(math.log(8 / 3) / 2, rel=1e-6)
    assert masked_token_ce(logits, labels, normalizer=1.0).item() == pytest.approx(math.log(8 / 3), rel=1e-6)


def test_lr_factor_by_hand():
    f = sft.lr_factor
    assert [f(s, "constant", 2, 10) for s in (0, 1, 2, 9)] == [0.0, 0.5, 1.0, 1.0]
    assert f(6, "linear", 2, 10) == pytest.approx(0.5) and f(10, "linear", 2, 10) == 0.0
    assert f(4, "cosine", 2, 10) == pytest.approx((1 + math.cos(math.pi / 4)) / 2) and f(
        6, "cosine", 2, 10
    ) == pytest.approx(0.5)


def test_epoch_batches_shard_and_cover():
    a, b = (sft.epoch_batches(5, 0, 1, r, 2, 2) for r in (0, 1))
    assert [len(x) for x in a] == [len(x) for x in b] == [2, 1]  # padded to 6 by repeating the order's start
    assert {i for x in a + b for i in x} == set(range(5))
    assert sft.epoch_batches(5, 0, 1, 0, 2, 2) == a and sft.epoch_batches(7, 0, 1, 0, 1, 7) != sft.epoch_batches(
        7, 0, 2, 0, 1, 7
    )


def test_imdb_supervised_examples_are_the_positive_reviews():
    ex = [Example("a", ["b"], {"label": 1}), Example("c", ["d"], {"label": 0})]
    assert imdb.supervised_examples(ex) == ex[:1]
    with pytest.raises(GrueError, match="needs references"):
        imdb.supervised_examples(imdb.load("train", None, builtin=True))


def test_builtin_prompts_are_refused(tmp_path, monkeypatch):
    monkeypatch.delenv("GRUE_DATA_DIR", raising=False)
    cfg = resolve("imdb", "supervised", preset="smoke", flags={"run.output_dir": str(tmp_path / "r")})
    with pytest.raises(GrueError, match="needs references.*--data-dir"):
        sft.train(cfg, show=False)


def test_bad_settings_are_rejected(tmp_path, reviews):
    with pytest.raises(GrueError, match="grad_accum"):
        sft.train(config(tmp_path / "r", reviews, 1, "supervised.grad_accum=3"), show=False)
    with pytest.raises(GrueError, match="schedule"):
        config(tmp_path / "r2", reviews, 1, "supervised.schedule=step")
    with pytest.raises(GrueError, match="train_limit must be 0 or more"):
        sft.train(config(tmp_path / "r3", reviews, 1, "supervised.train_limit=-1"), show=False)


def test_train_limit_takes_the_first_examples_after_the_filter(tmp_path, reviews):
    """train_limit=8 trains on the first 8 positive reviews of the train split (the IMDB filter): 2 steps of 4."""
    cfg = config(tmp_path / "r", reviews, 1, "supervised.train_limit=8")
    train_ex, _ = sft.supervised_data(cfg)
    every = sft.supervised_data(config(tmp_path / "all", reviews, 1))[0]
    assert len(every) > 8 and train_ex == every[:8] and all(e.meta["label"] == 1 for e in every)
    sft.train(cfg, show=False)
    state = json.loads((tmp_path / "r" / "checkpoint" / "trainer" / "state.json").read_text())
    assert (state["examples"], state["step"]) == (8, 2)


# ---- training ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("model,fmt", [("tiny-gpt2", "prompt_target"), ("tiny-gpt2", "text"), ("tiny-t5", "text")])
def test_training_lowers_the_sft_loss(tmp_path, reviews, model, fmt):
    run = tmp_path / "run"
    summary = sft.train(
        config(run, reviews, 3, "supervised.lr=3e-3", f"supervised.causal_format={fmt}", model=model), show=False
    )
    rows = lines(run / "metrics.jsonl")
    assert [r["iteration"] for r in rows] == [1, 2, 3] and summary["iterations"] == 3
    assert rows[-1]["loss/sft"] < rows[0]["loss/sft"] - 0.5, rows
    assert rows[-1]["eval/loss_sft"] < rows[0]["eval/loss_sft"], rows
    assert all(0.0 <= r["eval/reward_mean"] <= 1.0 and r["eval/examples"] == 4 for r in rows)
    steps = lines(run / "steps.jsonl")
    assert [s["step"] for s in steps] == list(range(1, rows[-1]["step"] + 1))
    state = json.loads((run / "checkpoint" / "trainer" / "state.json").read_text())
    assert (state["epoch"], state["step"]) == (3, rows[-1]["step"])
    assert not (run / "checkpoint" / "trainer" / "critic.safetensors").exists()


@pytest.mark.parametrize("fmt", ["prompt_target", "text"])
def test_gradient_accumulation_is_one_big_step(tmp_path, reviews, fmt):
    rows = []
    for accum in (1, 2):
        run = tmp_path / f"a{accum}"
        sft.train(
            config(
                run,
                reviews,
                1,
                f"supervised.grad_accum={accum}",
                "supervised.dropout=false",
                f"supervised.causal_format={fmt}",
            ),
            show=False,
        )
        rows.append(lines(run / "steps.jsonl"))
    for a, b in zip(*rows):
        assert a["loss/sft"] == pytest.approx(b["loss/sft"], rel=1e-4) and a["grad_norm"] == pytest.approx(
            b["grad_norm"], rel=1e-3
        )


def test_resume_gives_the_same_metrics(tmp_path, reviews):
    """2 epochs straight == 1 epoch, then --resume to 2 (dropout on: the RNG state is restored)."""
    straight, split = tmp_path / "straight", tmp_path / "split"
    a = sft.train(config(straight, reviews, 2, "supervised.warmup_steps=6"), show=False)  # warm-up spans the resume
    sft.train(config(split, reviews, 1, "supervised.warmup_steps=6"), show=False)
    cfg = from_dict(load_yaml(split / "config.yaml"), "config.yaml")
    cfg.algo.epochs = 2  # what `grue train --resume RUN --iterations 2` does
    with pytest.raises(GrueError, match="already finished 1 epochs"):
        sft.train(from_dict(load_yaml(split / "config.yaml"), "config.yaml"), resume_dir=str(split), show=False)
    b = sft.train(cfg, resume_dir=str(split), show=False)
    for name in ("metrics.jsonl", "steps.jsonl", "samples.jsonl"):
        assert [comparable(r) for r in lines(straight / name)] == [comparable(r) for r in lines(split / name)], name
    assert a["policy_sha256_per_rank"] == b["policy_sha256_per_rank"]


# ---- the CLI, and Supervised+PPO ---------------------------------------------------------------------


@pytest.mark.slow
def test_cli_supervised_resume_then_ppo_init_from(tmp_path, reviews):
    sets = [x for s in SMALL for x in ("--set", s)]
    run = tmp_path / "sft"
    p = run_cli(
        "train",
        "imdb",
        "--algo",
        "supervised",
        "--preset",
        "smoke",
        "--data-dir",
        str(reviews),
        "--iterations",
        "1",
        "--output-dir",
        str(run),
        "--quiet",
        *sets,
    )
    assert p.returncode == 0, p.stderr[-2000:]
    assert yaml.safe_load((run / "config.yaml").read_text())["supervised"]["epochs"] == 1
    p = run_cli("train", "imdb", "--resume", str(run), "--iterations", "2", "--quiet")
    assert p.returncode == 0, p.stderr[-2000:]
    assert "done: 2 iterations" in p.stdout
    assert [r["iteration"] for r in lines(run / "metrics.jsonl")] == [1, 2]
    assert yaml.safe_load((run / "config.yaml").read_text())["supervised"]["epochs"] == 2
    summary = json.loads((run / "summary.json").read_text())
    assert summary["epochs"] == 2 and summary["loss/last_epoch"] < summary["loss/first_epoch"]

    ppo = tmp_path / "ppo"
    p = run_cli(
        "train",
        "imdb",
        "--algo",
        "ppo",
        "--preset",
        "smoke",
        "--init-from",
        str(run),
        "--iterations",
        "1",
        "--output-dir",
        str(ppo),
        "--quiet",
        *FAST,
    )
    assert p.returncode == 0, p.stderr[-2000:]
    assert yaml.safe_load((ppo / "config.yaml").read_text())["run"]["model"] == str(run / "checkpoint")
    assert len(lines(ppo / "metrics.jsonl")) == 1


@pytest.mark.parametrize(
    "args,message",
    [
        (["--algo", "supervised", "--preset", "smoke"], "supervised training needs references"),
        (["--init-from", "{tmp}"], "no checkpoint there"),
        (["--init-from", "{tmp}", "--model", "tiny-gpt2"], "--init-from and --model"),
    ],
)
def test_cli_bad_input_is_one_line(tmp_path, args, message):
    p = cli_in_process(
        "train", "imdb", *[a.format(tmp=tmp_path) for a in args], "--output-dir", str(tmp_path / "r"), "--quiet"
    )
    assert p.returncode == 2, (p.stdout, p.stderr)
    out = p.stderr.strip().splitlines()
    assert len(out) == 1 and out[0].startswith("error: ") and message in out[0], p.stderr


@pytest.mark.slow
def test_real_imdb_sample_one_epoch(tmp_path, data_dir):
    run = tmp_path / "real"
    cfg = config(run, data_dir, 1, "supervised.batch_size=16", "supervised.eval_limit=8", "supervised.log_every=0")
    summary = sft.train(cfg, show=False)
    rows = lines(run / "metrics.jsonl")
    positives = len(imdb.supervised_examples(imdb.load("train", str(data_dir))))
    assert len(rows) == 1 and rows[0]["step"] == math.ceil(positives / 16) and rows[0]["eval/examples"] == 8
    assert summary["epochs"] == 1 and math.isfinite(rows[0]["loss/sft"])


def test_supervised_reports_its_epochs_to_tensorboard(tmp_path, reviews):
    pytest.importorskip("tensorboard", reason="tensorboard is not installed (pip install 'grue[trackers]')")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    sft.train(config(tmp_path / "r", reviews, 1, "supervised.train_limit=8", "run.report_to=tensorboard"), show=False)
    (row,) = lines(tmp_path / "r" / "metrics.jsonl")
    events = EventAccumulator(str(tmp_path / "r" / "tensorboard")).Reload()
    for key in ("loss/sft", "eval/reward_mean"):
        assert [(e.step, pytest.approx(e.value)) for e in events.Scalars(key)] == [(1, row[key])], key
