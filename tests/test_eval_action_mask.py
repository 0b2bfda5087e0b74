"""NLPO checkpoints are evaluated through their action mask (grue.action_mask with transformers' generate)."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from safetensors.torch import save_model
from transformers import LogitsProcessorList

from conftest import cli_in_process, run_cli
from grue.action_mask import ActionMask, parents
from grue.checkpoint import MANIFEST, manifest
from grue.models import load_policy, load_tokenizer
from grue.results import load_results
from grue.rollout import MaskSettings, lm_inputs, policy_forward, tokenize_prompts
from grue.sampling import top_p_mask

# transformers 5 deprecates `past_key_values=` (a FutureWarning per call): the decoders hand the cache over as `cache=`
pytestmark = pytest.mark.filterwarnings("error::FutureWarning")

PROMPTS = ["The film was", "I went into this movie and", "A great", "Nothing about the plot"]
MODES = {
    "greedy": dict(do_sample=False, num_beams=1),
    "sampling": dict(do_sample=True, num_beams=1, top_k=0),
    "beam": dict(do_sample=False, num_beams=3),
}
FAST_NLPO = [
    "--set",
    "nlpo.batch_unit=completions",
    "--set",
    "nlpo.rollout_size=16",
    "--set",
    "nlpo.rollout_batch_size=8",
    "--set",
    "nlpo.minibatch_size=8",
    "--set",
    "nlpo.epochs=1",
    "--set",
    "generation.max_new_tokens=8",
    "--set",
    "generation.min_new_tokens=8",
]


def disagreeing_copy(policy, seed: int = 1):
    """A masking policy whose top-p sets differ from the policy's choices."""
    masker = copy.deepcopy(policy)
    with torch.no_grad():
        for p in masker.parameters():
            p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(seed)) * 0.5)
    return masker


def response_of(seqs, query_ids, seq2seq: bool, eos: int):
    """generate's output -> (response ids (B,T), mask (B,T): 1 up to and including the first EOS)."""
    resp = seqs[:, 1:] if seq2seq else seqs[:, query_ids.shape[1] :]
    after_eos = torch.cumsum((resp == eos).long(), 1) - (resp == eos).long() > 0
    return resp, (~after_eos).float()


def allowed_teacher_forced(mask: MaskSettings, q, qm, resp, resp_mask, seq2seq: bool) -> torch.Tensor:
    """The masking policy's top-p sets (B,T,V) at every response step, from one teacher-forced pass."""
    inputs = lm_inputs(q, qm, resp, resp_mask, seq2seq, getattr(mask.model.config, "decoder_start_token_id", None))
    with torch.no_grad():
        logits, _ = policy_forward(mask.model, inputs, resp.shape[1], seq2seq)
    B, T, V = logits.shape
    return top_p_mask(logits.reshape(B * T, V), mask.top_p, mask.min_keep, mask.always).reshape(B, T, V)


def inside(allowed, resp, resp_mask) -> bool:
    hit = allowed.gather(-1, resp[..., None])[..., 0]
    return bool((hit | (resp_mask == 0)).all())


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("name", ["tiny-gpt2", "tiny-t5"])
def test_every_generated_token_lies_in_the_masking_policys_top_p_set(name, mode):
    policy, tok = load_policy(name).eval(), load_tokenizer(name)
    seq2seq = name == "tiny-t5"
    mask = MaskSettings(disagreeing_copy(policy).eval(), 0.3, 5, torch.tensor(sorted(set(tok.all_special_ids))))
    q, qm = tokenize_prompts(tok, PROMPTS, 16, seq2seq, "cpu")
    kw = dict(
        max_new_tokens=10, min_new_tokens=3, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, **MODES[mode]
    )

    def run(processors):
        torch.manual_seed(0)
        seqs = policy.generate(input_ids=q, attention_mask=qm, logits_processor=LogitsProcessorList(processors), **kw)
        resp, resp_mask = response_of(seqs, q, seq2seq, tok.eos_token_id)
        return inside(allowed_teacher_forced(mask, q, qm, resp, resp_mask, seq2seq), resp, resp_mask), resp

    masked_ok, resp = run([ActionMask(mask, q, qm, MODES[mode]["num_beams"])])
    assert masked_ok, "a generated token left the masking policy's top-p set"
    assert resp.shape[1] >= 3
    free_ok, _ = run([])
    assert not free_ok, "without the mask the policy leaves the set (so the check above can fail)"


def test_parents_follow_reordered_beams_within_their_prompt():
    prev = torch.tensor([[5, 1], [5, 2], [5, 1], [5, 2]])  # 2 prompts x 2 beams; equal prefixes across prompts
    cur = torch.tensor([[5, 2], [5, 2], [5, 1], [5, 2]])
    assert parents(prev, cur, 2).tolist() == [1, 1, 2, 3]
    with pytest.raises(RuntimeError):
        parents(prev, torch.tensor([[5, 3], [5, 2], [5, 1], [5, 2]]), 2)


def few_token_mask_model(name: str, tokens: list[int], seed_model=None):
    """tiny-gpt2 whose next-token distribution puts nearly all mass on ``tokens``, whatever the prefix: its final
    layer norm outputs a constant vector read by the (tied) embedding rows, and only ``tokens`` have that feature."""
    model = copy.deepcopy(seed_model) if seed_model is not None else load_policy(name)
    with torch.no_grad():
        wte = model.transformer.wte.weight
        wte[:, 0] = 0.0
        wte[tokens, 0] = 1.0
        model.transformer.ln_f.weight.zero_()
        model.transformer.ln_f.bias.zero_()
        model.transformer.ln_f.bias[0] = 60.0  # logits: 60 on ``tokens``, 0 elsewhere
    return model.eval()


def word_tokens(tok, words):
    ids = [tok(" " + w)["input_ids"] for w in words]
    assert all(len(i) == 1 for i in ids), "each word must be one token of the tiny vocabulary"
    return [i[0] for i in ids]


def test_a_mask_of_few_tokens_restricts_generate_to_them():
    policy, tok = load_policy("tiny-gpt2").eval(), load_tokenizer("tiny-gpt2")
    few = word_tokens(tok, ["good", "bad", "movie"])
    mask = MaskSettings(few_token_mask_model("tiny-gpt2", few), 0.9, 1, torch.tensor(sorted(set(tok.all_special_ids))))
    q, qm = tokenize_prompts(tok, PROMPTS, 16, False, "cpu")
    for mode, kw in MODES.items():
        seqs = policy.generate(
            input_ids=q,
            attention_mask=qm,
            max_new_tokens=8,
            min_new_tokens=8,
            pad_token_id=0,
            eos_token_id=1,
            logits_processor=LogitsProcessorList([ActionMask(mask, q, qm, kw["num_beams"])]),
            **kw,
        )
        assert set(seqs[:, q.shape[1] :].flatten().tolist()) <= set(few) | set(tok.all_special_ids), mode


@pytest.mark.slow
def test_nlpo_run_is_evaluated_through_its_mask(tmp_path, data_dir):
    run = tmp_path / "nlpo"
    r = run_cli(
        "train",
        "imdb",
        "--algo",
        "nlpo",
        "--preset",
        "smoke",
        "--iterations",
        "1",
        "--data-dir",
        str(data_dir),
        "--output-dir",
        str(run),
        "--quiet",
        *FAST_NLPO,
        "--set",
        "nlpo.min_tokens_to_keep=3",
    )
    assert r.returncode == 0, r.stderr[-2000:]
    common = [
        "eval",
        "--checkpoint",
        str(run),
        "--limit",
        "4",
        "--data-dir",
        str(data_dir),
        "--quiet",
        "--set",
        "eval.max_new_tokens=8",
        "--set",
        "eval.min_new_tokens=8",
    ]

    def evaluate(out, *sets):
        r = cli_in_process(*common, "--output-dir", str(tmp_path / out), *sets)
        assert r.returncode == 0, r.stderr[-2000:]
        rows = (tmp_path / out / "samples.jsonl").read_text(encoding="utf-8").splitlines()
        return load_results(tmp_path / out / "results.json"), [json.loads(line)["generation"] for line in rows]

    res, _ = evaluate("own")  # the run's own masking policy
    assert res.algorithm == "nlpo" and res.config["eval"]["action_mask"] is True

    # A tiny model's top 0.9 holds thousands of tokens and hardly binds; a masking policy that allows three
    # words shows that the checkpoint's mask is what evaluation applies, and that it can be turned off.
    ckpt = run / "checkpoint"
    tok = load_tokenizer(str(ckpt))
    few = word_tokens(tok, ["good", "bad", "movie"])
    save_model(
        few_token_mask_model("tiny-gpt2", few, seed_model=load_policy(str(ckpt))),
        str(ckpt / "trainer" / "mask_policy.safetensors"),
    )
    # a deliberate replacement, so the checkpoint's manifest is brought up to date (else it is refused as damaged)
    (ckpt / MANIFEST).write_text(json.dumps(manifest(ckpt)))
    res, masked = evaluate("few")
    assert res.config["eval"]["action_mask"] is True
    assert all(g.split() and set(g.split()) <= {"good", "bad", "movie"} for g in masked), masked
    res, free = evaluate("off", "--set", "eval.action_mask=false")
    assert res.config["eval"]["action_mask"] is False
    assert free != masked and not all(set(g.split()) <= {"good", "bad", "movie"} for g in free)
