"""The shared on-policy steps: rollouts counted in tokens, minibatches of tokens, decoding, the first ratio."""

from __future__ import annotations

import pytest
import torch

from grue.algorithms import a2c, ppo
from grue.algorithms import resolve
from grue.onpolicy import backward_step, collect_iteration, minibatches, score_and_advantages
from grue.rollout import decode_completions, first_tokens
from grue.run_setup import start_session

EOS = 15  # the GPT-2 layout below: id 0 is the ordinary token "!", pad = eos = the last id
WORDS = ["!", "good", "bad", "film", "plot", "cast", "was", "is", "a", "the", "and", "very", "n't", ".", "dull"]


def gpt2_layout_tokenizer():
    """A word-level tokenizer laid out like GPT-2's: "!" is id 0, ``<|endoftext|>`` (15) is bos, eos, unk and pad."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(
        models.WordLevel({w: i for i, w in enumerate(WORDS + ["<|endoftext|>"])}, unk_token="<|endoftext|>")
    )
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    end = "<|endoftext|>"
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=end, eos_token=end, unk_token=end, pad_token=end)


def gpt2_layout_model_dir(path):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    cfg = GPT2Config(
        vocab_size=16,
        n_positions=64,
        n_embd=32,
        n_layer=1,
        n_head=2,
        bos_token_id=EOS,
        eos_token_id=EOS,
        pad_token_id=EOS,
    )
    GPT2LMHeadModel(cfg).save_pretrained(path)
    gpt2_layout_tokenizer().save_pretrained(path)
    return str(path)


def test_padding_after_eos_is_never_decoded_as_token_zero():
    """Regression: decoding ``ids * mask`` turned GPT-2's padding into id 0, "!", on every shorter completion."""
    tok = gpt2_layout_tokenizer()
    ids = torch.tensor([[1, 3, EOS, EOS, EOS], [2, 4, 6, 11, 12], [0, 13, EOS, EOS, EOS]])
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]).float()
    assert decode_completions(tok, ids, mask, clean_up=False) == ["good film", "bad plot was very n't", "! ."]
    # transformers 4.x's default clean-up, which RL4LMs' decoding applied (transformers 4.18 decode)
    assert decode_completions(tok, ids, mask) == ["good film", "bad plot was veryn't", "!."]
    assert tok.batch_decode((ids * mask.long()).tolist(), skip_special_tokens=True)[0] == "good film ! !", (
        "the tokenizer must expose the bug the fix avoids"
    )


def session(tmp_path, *sets, model="tiny-gpt2", algo="ppo"):
    base = [
        f"run.model={model}",
        "run.reward=reward_fixtures:letter_e",
        "generation.max_new_tokens=8",
        "generation.min_new_tokens=0",
        f"{algo}.rollout_batch_size=8",
        "run.checkpoint_every=1000",
    ]
    cfg = resolve("imdb", algo, preset="smoke", flags={"run.output_dir": str(tmp_path / "run")}, sets=base + list(sets))
    return start_session(cfg, None, check=ppo.check if algo != "a2c" else a2c.check)


def test_completions_and_rewards_see_only_real_tokens(tmp_path):
    """A real rollout with a GPT-2-layout model: completions end at EOS, and no padding reaches the reward."""
    s = session(
        tmp_path,
        f"run.model={gpt2_layout_model_dir(tmp_path / 'm')}",
        "run.reward=reward_fixtures:exclamations",
        "ppo.rollout_size=16",
        "ppo.minibatch_size=16",
    )
    b = collect_iteration(s)
    tok = gpt2_layout_tokenizer()
    lengths = b.rollout.response_mask.sum(-1).long()
    assert int(lengths.min()) < int(lengths.max()), "some completions must end early for the test to mean something"
    sc = score_and_advantages(s, b, 0.1)
    ids = b.rollout.response_ids
    for row, n, text, bangs in zip(ids.tolist(), lengths.tolist(), sc.completions, sc.scores.tolist()):
        real = [t for t in row[:n] if t != EOS]
        assert text == tok.clean_up_tokenization(" ".join(WORDS[t] for t in real))
        assert bangs == real.count(0), "the reward saw a '!' that the policy did not generate"


def test_first_tokens_counts_row_after_row():
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0], [1, 1, 1, 1]]).float()
    assert first_tokens(mask, 4).tolist() == [[1, 1, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0]]
    assert first_tokens(mask, 5).tolist() == [[1, 1, 1, 0], [1, 1, 0, 0], [0, 0, 0, 0]]
    assert first_tokens(mask, 100).tolist() == mask.tolist()


def test_minibatches_of_tokens_cover_each_token_once():
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0], [1, 1, 1, 1]]).float()  # 9 tokens
    g = torch.Generator().manual_seed(0)
    seen = torch.zeros_like(mask)
    sizes = []
    for rows, sel in minibatches(mask, "tokens", 3, g):
        assert rows.tolist() == sorted(set(rows.tolist())) and sel.shape == (len(rows), 4)
        assert bool((sel.sum(-1) > 0).all()), "a minibatch lists only the rows it touches"
        seen[rows] += sel
        sizes.append(int(sel.sum()))
    assert sizes == [3, 3, 3] and seen.tolist() == mask.tolist()
    # completions: whole rows, all their tokens
    parts = minibatches(mask, "completions", 2, torch.Generator().manual_seed(0))
    assert [len(rows) for rows, _ in parts] == [2, 1]
    assert all(torch.equal(sel, mask[rows]) for rows, sel in parts)


@pytest.mark.parametrize("model", ["tiny-gpt2", "tiny-t5"])
def test_a_rollout_in_tokens_holds_exactly_rollout_size_transitions(tmp_path, model):
    """RL4LMs' buffer: n_envs x n_steps transitions, whole episodes then a cut one, bootstrapped from the critic."""
    s = session(tmp_path, "ppo.batch_unit=tokens", "ppo.rollout_size=44", "ppo.minibatch_size=11", model=model)
    b = collect_iteration(s)
    r = b.rollout
    assert int(r.response_mask.sum()) == 44
    lengths, generated = r.response_mask.sum(-1).long(), b.generated_mask.sum(-1).long()
    cut = (lengths < generated).nonzero().flatten().tolist()
    assert cut == [len(lengths) - 1], "only the last episode may be cut"
    n = int(lengths[-1])
    assert b.bootstrap[-1].item() == pytest.approx(r.values[-1, n].item()) and b.bootstrap[-1].item() != 0.0
    assert bool((b.bootstrap[:-1] == 0).all())
    assert s.stream.state_dict()["pos"] == len(b.idx), "prompts drawn = episodes kept (none generated in vain here)"
    sc = score_and_advantages(s, b, 0.1)
    # the cut episode's score is logged but is not a reward: its rewards are the KL terms only
    assert torch.allclose(sc.rewards[-1], -0.1 * sc.kl[-1])
    for rows, sel in minibatches(r.response_mask, "tokens", 11, s.shuffle_rng):
        assert int(sel.sum()) == 11
        stats = backward_step(s, r, rows, sel, sc.advantages, sc.returns, ppo.minibatch_loss, 2)
        assert torch.isfinite(stats["loss/total"])
        s.optimizer.zero_grad()


@pytest.mark.usefixtures("fresh_accelerator")
@pytest.mark.parametrize("precision", ["no", "bf16"])
@pytest.mark.parametrize("dist", ["full", "sampled"])
@pytest.mark.parametrize("model", ["tiny-gpt2", "tiny-t5"])
def test_the_first_minibatch_ratio_is_one(tmp_path, precision, dist, model):
    """Old log-probs (the sampling step's, recomputed teacher-forced under mixed precision) and the update's
    agree: approx KL of the first minibatch of the first epoch below 1e-4, in fp32 and bf16."""
    s = session(
        tmp_path,
        f"run.mixed_precision={precision}",
        f"ppo.policy_distribution={dist}",
        "ppo.rollout_size=16",
        "ppo.minibatch_size=8",
        "generation.top_k=20",
        model=model,
    )
    b = collect_iteration(s)
    sc = score_and_advantages(s, b, 0.1)
    rows, sel = minibatches(b.rollout.response_mask, "completions", 8, s.shuffle_rng)[0]
    stats = backward_step(s, b.rollout, rows, sel, sc.advantages, sc.returns, ppo.minibatch_loss, 1)
    assert abs(stats["policy/approx_kl"].item()) < 1e-4, stats
    assert stats["policy/clipfrac"].item() == 0.0


@pytest.mark.usefixtures("fresh_accelerator")
@pytest.mark.parametrize("model", ["tiny-gpt2", "tiny-t5"])
def test_a_separate_critic_backpropagated_apart_gives_the_summed_losses_gradients(tmp_path, model):
    """ppo.minibatch_loss backpropagates the policy's terms before a separate critic's forward (memory), and the
    caller the critic's value loss; every gradient of policy and critic equals the one of the plain summed loss,
    and loss/total is that sum."""
    from grue.losses import ppo_policy_loss, token_mean, value_loss
    from grue.onpolicy import evaluate_actions, old_logprobs, uses_full_softmax

    s = session(
        tmp_path,
        "ppo.rollout_size=8",
        "ppo.minibatch_size=8",
        "ppo.vf_coef=0.7",
        "ppo.value_clip=0.2",
        "ppo.ent_coef=0.01",
        model=model,
    )
    assert s.algo.critic == "separate"
    b = collect_iteration(s)
    sc = score_and_advantages(s, b, 0.1)
    rows, sel = minibatches(b.rollout.response_mask, "completions", 8, s.shuffle_rng)[0]
    stats = backward_step(s, b.rollout, rows, sel, sc.advantages, sc.returns, ppo.minibatch_loss, 2)
    split = {
        f"{i}.{n}": p.grad.clone()
        for i, m in enumerate(s.trainable)
        for n, p in m.named_parameters()
        if p.grad is not None
    }
    s.optimizer.zero_grad()
    r, a = b.rollout.index(rows.to(s.device)), s.algo
    adv = sc.advantages[rows]
    if getattr(a, "normalize_advantage", False):
        from grue.advantages import normalize

        adv = normalize(adv, sel)
    denom = sel.sum().clamp(min=1.0)
    logp, entropy, values = evaluate_actions(s, r)
    pg, _, _ = ppo_policy_loss(logp, old_logprobs(r, uses_full_softmax(s)), adv, sel, a.clip, denom)
    vf, _ = value_loss(values, r.values, sc.returns[rows], sel, a.value_clip, denom)
    total = pg + a.vf_coef * vf - a.ent_coef * token_mean(entropy, sel, denom)
    total.backward()
    summed = {
        f"{i}.{n}": p.grad for i, m in enumerate(s.trainable) for n, p in m.named_parameters() if p.grad is not None
    }
    assert split.keys() == summed.keys() and any(k.startswith("1.") for k in summed)  # the critic's are there
    for k in summed:
        torch.testing.assert_close(split[k], summed[k], rtol=1e-5, atol=1e-7, msg=k)
    assert stats["loss/total"].item() == pytest.approx(total.item(), rel=1e-5)
