"""NLPO: the top-p action mask, the sampler staying inside it, its refresh, and equivalence with PPO."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from safetensors.torch import load_file

from conftest import cli_in_process, run_cli, sampler
from grue.algorithms import nlpo, ppo
from grue.algorithms import resolve
from grue.fingerprint import fingerprint
from grue.onpolicy import collect
from grue.models import load_policy, load_tokenizer
from grue.rollout import MaskSettings, generate, lm_inputs, policy_forward, tokenize_prompts
from grue.sampling import sample_step, top_p_mask, warped_logprobs

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
    "nlpo.epochs=2",
    "--set",
    "generation.max_new_tokens=8",
    "--set",
    "generation.min_new_tokens=8",
]


def test_top_p_mask_hand_computed():
    logits = torch.tensor([[0.5, 0.3, 0.15, 0.05]]).log()
    # mass above each token, sorted: 0, 0.5, 0.8, 0.95; kept while below top_p
    assert top_p_mask(logits, 0.7).tolist() == [[True, True, False, False]]
    assert top_p_mask(logits, 0.8).tolist() == [[True, True, False, False]]
    assert top_p_mask(logits, 0.81).tolist() == [[True, True, True, False]]
    assert top_p_mask(logits, 0.1, min_keep=3).tolist() == [[True, True, True, False]]
    assert top_p_mask(logits, 0.1, always=torch.tensor([3])).tolist() == [[True, False, False, True]]
    assert top_p_mask(logits, 1.0).all()
    shuffled = logits[:, [2, 0, 3, 1]]
    assert top_p_mask(shuffled, 0.7).tolist() == [[False, True, False, True]]


def test_samples_never_leave_the_allowed_set_and_logprobs_renormalise():
    g = torch.Generator().manual_seed(0)
    logits = torch.tensor([[3.0, 2.5, 2.0, 1.0, 0.0, -1.0]]).repeat(2000, 1)
    allowed = torch.tensor([[False, True, True, False, True, False]]).repeat(2000, 1)
    out = sample_step(logits, step=0, eos_id=None, top_k=0, generator=g, allowed=allowed)
    assert set(out.tokens.tolist()) <= {1, 2, 4}
    p = torch.softmax(torch.tensor([2.5, 2.0, 0.0]), 0)  # the policy renormalised over the allowed set
    freq = torch.bincount(out.tokens, minlength=6)[[1, 2, 4]].float() / 2000
    assert torch.allclose(freq, p, atol=0.04)
    lp, _ = warped_logprobs(logits[:1, None], out.tokens[:1, None], out.support[:1, None])
    assert lp.exp().item() == pytest.approx(p[[1, 2, 4].index(out.tokens[0].item())].item(), abs=1e-5)
    total = sum(
        warped_logprobs(logits[:1, None], torch.tensor([[t]]), out.support[:1, None])[0].exp().item() for t in (1, 2, 4)
    )
    assert total == pytest.approx(1.0, abs=1e-6)
    assert out.raw_logprobs[0].item() == pytest.approx(torch.log_softmax(logits[0], 0)[out.tokens[0]].item(), abs=1e-6)


def allowed_sets(mask_model, r, mask: MaskSettings, seq2seq: bool) -> torch.Tensor:
    """The masking model's allowed sets (B,T,V) at every response step, from one teacher-forced pass."""
    inputs = lm_inputs(
        r.query_ids,
        r.query_mask,
        r.response_ids,
        r.response_mask,
        seq2seq,
        getattr(mask_model.config, "decoder_start_token_id", None),
    )
    with torch.no_grad():
        logits, _ = policy_forward(mask_model, inputs, r.response_ids.shape[1], seq2seq)
    B, T, V = logits.shape
    return top_p_mask(logits.reshape(B * T, V), mask.top_p, mask.min_keep, mask.always).reshape(B, T, V)


def inside(r, allowed: torch.Tensor) -> bool:
    hit = allowed.gather(-1, r.response_ids[..., None])[..., 0]
    return bool((hit | (r.response_mask == 0)).all())


@pytest.mark.parametrize("name", ["tiny-gpt2", "tiny-t5"])
def test_generation_stays_in_the_masking_models_top_p_set(name):
    policy, tok = load_policy(name).eval(), load_tokenizer(name)
    masker = copy.deepcopy(policy)
    with torch.no_grad():  # a masking model that disagrees with the policy
        for p in masker.parameters():
            p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(1)) * 0.5)
    seq2seq = name == "tiny-t5"
    mask = MaskSettings(masker, 0.3, 5, torch.tensor([0, 1]))
    q, qm = tokenize_prompts(tok, ["The film was", "I went into this movie and"], 16, seq2seq, "cpu")
    r = generate(
        policy,
        q,
        qm,
        sampler(16, 6, 6, top_k=50),
        eos_id=1,
        pad_id=0,
        generator=torch.Generator().manual_seed(0),
        mask=mask,
    )
    allowed = allowed_sets(masker, r, mask, seq2seq)
    assert inside(r, allowed)
    sup = r.support.long()
    assert bool(allowed.gather(-1, sup.clamp(min=0))[sup >= 0].all()), "every stored support id is allowed"


def config(tmp_path, algo, iterations, *sets):
    base = [
        f"{algo}.batch_unit=completions",
        f"{algo}.rollout_size=16",
        f"{algo}.rollout_batch_size=16",
        f"{algo}.minibatch_size=8",
        f"{algo}.epochs=2",
        "generation.max_new_tokens=8",
        "generation.min_new_tokens=8",
        "run.checkpoint_every=1",
    ]
    return resolve(
        "imdb",
        algo,
        preset="smoke",
        flags={"run.output_dir": str(tmp_path / algo), "algo.iterations": iterations},
        sets=base + list(sets),
    )


def test_top_mask_one_gives_exactly_ppo(tmp_path):
    ppo.train(config(tmp_path, "ppo", 1, "ppo.lr=3e-3"), show=False)  # the same lr, whatever the smoke preset says
    nlpo.train(config(tmp_path, "nlpo", 1, "nlpo.top_mask=1.0", "nlpo.lr=3e-3"), show=False)
    a = json.loads((tmp_path / "ppo" / "metrics.jsonl").read_text())
    b = json.loads((tmp_path / "nlpo" / "metrics.jsonl").read_text())
    for key, value in a.items():
        if not key.startswith("time/") and key != "tokens_per_s":
            assert b[key] == pytest.approx(value, rel=1e-5, abs=1e-7), key


def test_refresh_reaches_the_sampler(tmp_path):
    """After the policy drifts, the sampler follows the new masking copy after the interval, not before."""
    cfg = config(tmp_path, "nlpo", 3, "nlpo.top_mask=0.3", "nlpo.min_tokens_to_keep=3", "nlpo.mask_update_interval=2")
    s, mask = nlpo.start(cfg, None)
    initial = copy.deepcopy(mask.model)
    prompts = [e.prompt for e in s.examples[:16]]
    with torch.no_grad():  # the policy drifts far from its starting point
        for p in s.accelerator.unwrap_model(s.policy).parameters():
            p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(2)) * 0.5)
    current = s.accelerator.unwrap_model(s.policy)
    assert not nlpo.refresh_due(1, 2)
    r = collect(s, prompts, mask=mask)
    assert inside(r, allowed_sets(initial, r, mask, False)), "before the refresh the old mask holds"
    assert nlpo.refresh_due(2, 2)
    nlpo.refresh(s, mask)
    r = collect(s, prompts, mask=mask)
    assert inside(r, allowed_sets(current, r, mask, False)), "after the refresh the sampler uses the new copy"
    assert not inside(r, allowed_sets(initial, r, mask, False)), "and not the stale one"


def test_training_loop_refreshes_on_schedule(tmp_path):
    """Interval 2: iterations 1-2 sample under the starting policy; the refresh after collecting iteration 2
    copies the policy of 1 update, which iteration 3 samples under (RL4LMs' schedule)."""
    start = load_policy("tiny-gpt2").state_dict()
    nlpo.train(config(tmp_path / "one", "nlpo", 1, "nlpo.mask_update_interval=2"), show=False)
    nlpo.train(config(tmp_path / "two", "nlpo", 2, "nlpo.mask_update_interval=2"), show=False)
    one, two = tmp_path / "one" / "nlpo" / "checkpoint", tmp_path / "two" / "nlpo" / "checkpoint"
    mask1 = load_file(str(one / "trainer" / "mask_policy.safetensors"))
    mask2 = load_file(str(two / "trainer" / "mask_policy.safetensors"))
    policy1 = load_file(str(one / "model.safetensors"))  # the policy after 1 iteration (runs are deterministic)
    common = [k for k in mask1 if k in policy1]
    assert len(common) > 5
    assert all(torch.equal(mask1[k], start[k]) for k in common), "no refresh before the interval has passed"
    assert all(torch.equal(mask2[k], policy1[k]) for k in common), "refreshed from the policy of 1 update"
    assert any(not torch.equal(policy1[k], start[k]) for k in common), "the policy did move"


def test_mask_refresh_paper_keeps_the_initial_masking_policy(tmp_path):
    """``nlpo.mask_refresh: paper`` (RL4LMs' sampler, whose mask never moved): interval 1, three iterations, and the
    masking policy the sampler holds (saved in the checkpoint, read by evaluation) is bit-identical to the start."""
    start = load_policy("tiny-gpt2").state_dict()
    cfg = config(tmp_path, "nlpo", 3, "nlpo.mask_update_interval=1", "nlpo.mask_refresh=paper")
    nlpo.train(cfg, show=False)
    ckpt_dir = tmp_path / "nlpo" / "checkpoint"
    mask = load_file(str(ckpt_dir / "trainer" / "mask_policy.safetensors"))
    policy = load_file(str(ckpt_dir / "model.safetensors"))
    common = [k for k in mask if k in start and k in policy]
    assert len(common) > 5
    assert all(torch.equal(mask[k], start[k]) for k in mask if k in start), "the masking policy never moved"
    assert any(not torch.equal(policy[k], start[k]) for k in common), "while the policy did"
    periodic = config(tmp_path, "nlpo", 3, "nlpo.mask_update_interval=1")
    assert periodic.algo.mask_refresh == "periodic", "grue's refreshed NLPO stays the default"
    assert fingerprint(cfg.to_dict()) != fingerprint(periodic.to_dict()), "the fingerprint tells the two apart"


@pytest.mark.slow
def test_cli_nlpo_smoke_and_resume_across_the_mask_schedule(tmp_path):
    """Resume restores the masking policy: interval 3, so iteration 3 after resuming at 2 must use the saved mask."""
    common = [
        "--algo",
        "nlpo",
        "--preset",
        "smoke",
        "--quiet",
        *FAST_NLPO,
        "--set",
        "nlpo.mask_update_interval=3",
        "--set",
        "nlpo.top_mask=0.5",
        "--set",
        "nlpo.min_tokens_to_keep=5",
    ]
    straight, split = tmp_path / "straight", tmp_path / "split"
    # straight and the first half in this process; the resumed half in a new one, with only the checkpoint to go on
    assert cli_in_process("train", "imdb", *common, "--iterations", "4", "--output-dir", str(straight)).returncode == 0
    assert cli_in_process("train", "imdb", *common, "--iterations", "2", "--output-dir", str(split)).returncode == 0
    p = run_cli("train", "imdb", "--resume", str(split), "--iterations", "4", "--quiet")
    assert p.returncode == 0, p.stderr[-2000:]
    rows = [[json.loads(l) for l in (d / "metrics.jsonl").read_text().splitlines()] for d in (straight, split)]
    strip = [
        [{k: v for k, v in r.items() if not k.startswith("time/") and k != "tokens_per_s"} for r in rs] for rs in rows
    ]
    assert strip[0] == strip[1]
    assert all(r["mask/support_size"] >= 5 for r in rows[0])
