"""The settings the paper (arXiv:2210.01241v2) states for each of its rows, as dotted keys of grue's resolved config.

Transcribed from the paper's PDF (the copy /work/shared/paper/grue_reported.md cites): IMDB from Tables 3-7 and
Sec. B.3.1, the other tasks from their hyper-parameter tables (CommonGen Table 11, CNN/DailyMail Table 16, ToTTo
Table 22, NarrativeQA Table 27, WMT16 Table 29, DailyDialog Table 32) and the decoding their setup sections name.

leaderboard/tools/import_reported.py writes them into each reported file's ``config.paper.settings`` (or the literal
``unknown`` and a reason in ``config.paper.settings_reason``); grue.leaderboard.comparable reads them. Only what the
paper prints is stated: a setting it is silent on, or contradicts itself on, is left out (see docs/fidelity.md,
"Which settings made which rows"). Left out on these grounds: IMDB's discount factor; every table's tokenizer block
(see TABLES); CNN/DailyMail's swept rollout top k and mask update interval; ToTTo's supervised scheduler ("constant
with warm up", no length); WMT16's misprinted ppo/nlpo learning rate; DailyDialog's max new tokens (50 in Table 32,
20 by Table 33's output lengths) and the reward weights of its warm-started rows (Table 32 prints two values each,
"meteor coeff: 0.5 0.25", "intent coeff: 0.5 0.75", without saying which algorithm has which); NarrativeQA's and
DailyDialog's Supervised rows, which their tables give no supervised block for (``unknown``).
"""

from __future__ import annotations

UNKNOWN = "unknown"
SECTION = {"PPO": "ppo", "NLPO": "nlpo", "Supervised+PPO": "ppo", "Supervised+NLPO": "nlpo", "Supervised": "supervised"}
"""The paper's algorithm -> the config section that holds its training settings (the last stage's)."""

IMDB_DECODING = {"eval.do_sample": True, "eval.top_k": 50, "eval.min_new_tokens": 48, "eval.max_new_tokens": 48}
"""Table 4 "decoding" (top-k 50 sampling of 48 tokens), kept "for all methods" (Sec. B.3.1)."""
IMDB_RL = {
    "batch_unit": "tokens",
    "rollout_size": 1280,
    "iterations": 50,
    "minibatch_size": 64,
    "epochs": 5,
    "lr": 1e-6,
    "clip": 0.2,
    "vf_coef": 0.5,
    "kl_coef": 0.01,
}
"""Table 4 ppo / nlpo (1280 steps per update, 64000 in all, batch 64, 5 epochs, lr 1e-6, clip 0.2, value coeff 0.5) and
Sec. B.3.1 (initial KL coefficient 0.01). Left out: the discount factor, which Table 4 gives as 0.99 (gae lambda 0.95)
while Table 6 labels the headline rows gamma 0.95."""
IMDB_NLPO = {"top_mask": 0.9, "mask_update_interval": 5, "mask_refresh": "paper"}
"""Table 4 nlpo (top mask ratio 0.9, target update iterations 5); the paper's NLPO ran with a masking policy that never
refreshed (RL4LMs' logits processor, see docs/fidelity.md)."""
IMDB_SUPERVISED = {"supervised.batch_size": 64, "supervised.epochs": 10, "supervised.lr": 1e-5}
"""Table 4 supervised."""
HEADLINE_KL = {"PPO": 0.5, "NLPO": 1.0, "Supervised+PPO": 0.5, "Supervised+NLPO": 1.0}
"""Table 3's rows are Table 5's rows with these target KLs (the same numbers, printed in both)."""
WARM = ("Supervised+PPO", "Supervised+NLPO")
"""The paper's warm-started rows: the RL stage starts from a supervised model."""

# The other tasks' hyper-parameter tables, as printed in arXiv:2210.01241v2 (the PDF that grue_reported.md cites,
# Mustapha-AJEGHRIR/Report_papers_RL commit 708ba48), one dict per block of each table: "rl" is the "ppo/nlpo" block,
# "warm" what the "supervised+ppo (or nlpo)" block prints otherwise than "rl" (the rest is equal), "supervised" the
# "supervised" block, "decoding" the "decoding" block.
# Paper names -> grue keys: steps per update -> rollout_size (tokens: batch_unit tokens), total number of steps /
# steps per update -> iterations, batch size -> minibatch_size, epochs per update -> epochs, learning rate -> lr,
# entropy coefficient -> ent_coef, initial kl coeff -> kl_coef, target kl -> kl_target, discount factor -> gamma,
# gae lambda -> lam, clip ratio -> clip, value function coeff -> vf_coef, rollouts top k -> generation.top_k, top
# mask ratio -> nlpo.top_mask, target update iterations -> nlpo.mask_update_interval; decoding "min length" N is
# RL4LMs' min_length, which for T5 counts the decoder start token: eval.min_new_tokens N - 1 (GPT-2: N; see
# docs/fidelity.md section 5). Left out everywhere: the "tokenizer" block (padding side, truncation side, max
# length): it gives the tokenizer's settings, which RL4LMs' environment overrides for the RL prompts (ToTTo's were
# cut on the left, CommonGen NLPO's at 15 tokens: docs/fidelity.md section 5), so it does not say how a row's
# prompts were cut.
TABLES = {
    "commongen": {  # Table 11 "CommonGen Hyperparams"
        "table": "Table 11",
        "supervised": {"batch_size": 8, "epochs": 4, "lr": 1e-5, "schedule": "cosine", "weight_decay": 0.01},
        "rl": {
            "steps": 1280,
            "total": 256000,
            "minibatch_size": 64,
            "epochs": 5,
            "lr": 2e-6,
            "ent_coef": 0.01,
            "kl_coef": 0.001,
            "kl_target": 2.0,
            "gamma": 0.99,
            "lam": 0.95,
            "clip": 0.2,
            "vf_coef": 0.5,
            "top_mask": 0.9,
            "mask_update_interval": 20,
        },
        "warm": {"total": 128000, "kl_coef": 0.01, "kl_target": 1.0},
        # Table 11 decoding: num beams 5, min length 5, max new tokens 20; Sec. B.4.1: beam search in evaluation
        "decoding": {"num_beams": 5, "do_sample": False, "min_new_tokens": 4, "max_new_tokens": 20},
    },
    "cnn_dailymail": {  # Table 16 "CNN/DM Hyperparams"; its rollouts top k ("sweep of (50,100)") and target update
        "table": "Table 16",  # iterations ("sweep of (10, 20, 30)") are sweeps, not a row's value: left out
        "supervised": {"batch_size": 16, "epochs": 2, "lr": 1e-4, "schedule": "cosine", "weight_decay": 0.1},
        "rl": {
            "steps": 5120,
            "total": 512000,
            "minibatch_size": 64,
            "epochs": 5,
            "lr": 2e-6,
            "ent_coef": 0.0,
            "kl_coef": 0.001,
            "kl_target": 0.2,
            "gamma": 0.99,
            "lam": 0.95,
            "clip": 0.2,
            "vf_coef": 0.5,
            "top_mask": 0.9,
        },
        "warm": {"total": 256000, "kl_coef": 0.01},
        # Table 16 decoding: sampling True, temperature 0.7, min length 50, max new tokens 100
        "decoding": {"do_sample": True, "temperature": 0.7, "min_new_tokens": 49, "max_new_tokens": 100},
    },
    "totto": {  # Table 22 "ToTTO Hyperparams"; its supervised scheduler "constant with warm up" names no warm-up
        "table": "Table 22",  # length: left out
        "supervised": {"batch_size": 8, "epochs": 4, "lr": 1e-4, "weight_decay": 0.1},
        "rl": {
            "steps": 2560,
            "total": 256000,
            "minibatch_size": 64,
            "epochs": 5,
            "lr": 2e-6,
            "ent_coef": 0.0,
            "kl_coef": 0.001,
            "kl_target": 2.0,
            "gamma": 0.99,
            "lam": 0.95,
            "clip": 0.2,
            "top_k": 0,
            "vf_coef": 0.5,
            "top_mask": 0.9,
            "mask_update_interval": 20,
        },
        "warm": {"lr": 5e-07, "kl_coef": 0.01, "kl_target": 0.2, "top_k": 50},
        # Table 22 decoding: num beams 5, min length 10, max new tokens 50; Sec. B.6.1: beam search during inference
        "decoding": {"num_beams": 5, "do_sample": False, "min_new_tokens": 9, "max_new_tokens": 50},
    },
    "narrativeqa": {  # Table 27 "NarQA Hyperparams": no supervised block (Sec. B.7.1: the supervised model is
        "table": "Table 27",  # UnifiedQA's, trained elsewhere)
        "supervised": None,
        "rl": {
            "steps": 5120,
            "total": 512000,
            "minibatch_size": 64,
            "epochs": 5,
            "lr": 2e-6,
            "ent_coef": 0.0,
            "kl_coef": 0.001,
            "kl_target": 1.0,
            "gamma": 0.99,
            "lam": 0.95,
            "clip": 0.2,
            "top_k": 50,
            "vf_coef": 0.5,
            "top_mask": 0.9,
            "mask_update_interval": 20,
        },
        "warm": {"steps": 2560, "lr": 5e-07, "kl_target": 0.2},
        "decoding": {"num_beams": 4, "max_new_tokens": 50},  # Table 27 decoding: num beams 4, max new tokens 50
    },
    "wmt16": {  # Table 29 "NMT Hyperparams"; its ppo/nlpo learning rate is misprinted "0.0.000001": left out
        "table": "Table 29",
        "supervised": {"batch_size": 64, "epochs": 5, "lr": 1e-5, "schedule": "constant", "weight_decay": 0.1},
        "rl": {
            "steps": 5120,
            "total": 256000,
            "minibatch_size": 64,
            "epochs": 5,
            "ent_coef": 0.0,
            "kl_coef": 0.001,
            "kl_target": 0.2,
            "gamma": 0.99,
            "lam": 0.95,
            "clip": 0.2,
            "top_k": 10,
            "vf_coef": 0.5,
            "top_mask": 0.5,
            "mask_update_interval": 20,
        },
        "warm": {"steps": 2560, "lr": 5e-07},
        # Table 29 decoding: num beams 4, length penalty 0.6, max new tokens 128
        "decoding": {"num_beams": 4, "length_penalty": 0.6, "max_new_tokens": 128},
    },
    "dailydialog": {  # Table 32 "DailyDialog Hyperparams": no supervised block. Its decoding "max new tokens: 50" is
        "table": "Table 32",  # left out: Table 33's mean outputs of 18.4-18.9 tokens need a cap of 20 (the files')
        "supervised": None,
        "rl": {
            "steps": 1280,
            "total": 128000,
            "minibatch_size": 64,
            "epochs": 5,
            "lr": 1e-6,
            "ent_coef": 0.0,
            "kl_coef": 0.2,
            "kl_target": 0.5,
            "gamma": 0.99,
            "lam": 0.95,
            "clip": 0.2,
            "top_k": 20,
            "vf_coef": 0.5,
            "top_mask": 0.9,
            "mask_update_interval": 20,
        },
        "warm": {"total": 64000},
        # Table 32 decoding: top k 20, min length 2 (GPT-2: 2 new tokens); Sec. B.9.1: top-k sampling for all methods
        "decoding": {"do_sample": True, "top_k": 20, "min_new_tokens": 2},
    },
}
NLPO_ONLY = ("top_mask", "mask_update_interval")
GENERATION = ("top_k",)
REWARDS = {
    # the reward column of each results table -> grue's reward (grue.rewards.REWARDS) that computes it, per start:
    # (task, reward as printed, warm-started?). Sec. B.4.1: CommonGen's RL rows not warm-started add a -1 penalty
    # when the output repeats the prompt's n-grams (grue: commongen_meteor), the warm-started rows do not.
    ("commongen", "Meteor", False): "commongen_meteor",
    ("commongen", "Meteor", True): "meteor",
    ("commongen", "Rouge-1", True): "rouge1",
    ("cnn_dailymail", "Meteor", False): "meteor",
    ("cnn_dailymail", "Meteor", True): "meteor",
    ("cnn_dailymail", "Rouge-1", False): "rouge1",
    ("cnn_dailymail", "Rouge-1", True): "rouge1",
    ("totto", "meteor", False): "meteor",
    ("totto", "meteor", True): "meteor",
    ("totto", "parent", False): "parent",
    ("totto", "parent", True): "parent",
    ("narrativeqa", "Rouge-L Max", False): "rouge_lmax",
    ("narrativeqa", "Rouge-L Max", True): "rouge_lmax",
    ("wmt16", "TER", False): "one_minus_ter",
    ("wmt16", "TER", True): "one_minus_ter",
    ("dailydialog", "Meteor + Intent", False): "intent_meteor",
    ("dailydialog", "Meteor + Intent", True): "intent_meteor",
}
"""A reward no grue reward computes is stated as printed (``paper reward: NAME``): no grue run has it."""
NO_GRUE_REWARD = "paper reward: "


def imdb_settings(algorithm: str, table: str, variant: str | None) -> dict:
    """The stated settings of an IMDB row of Table 3, 5, 6 or 7 (zero-shot rows of the last two)."""
    out = dict(IMDB_DECODING)
    if algorithm == "Supervised":
        return {**out, **IMDB_SUPERVISED}
    if algorithm not in SECTION:  # Zero-Shot: the decoding only
        return out
    section = SECTION[algorithm]
    if algorithm in ("PPO", "NLPO"):  # Table 4 gives no separate values for the Supervised+ rows
        out.update({f"{section}.{k}": v for k, v in IMDB_RL.items()})
    if section == "nlpo":
        nlpo = IMDB_NLPO if algorithm == "NLPO" else {"mask_refresh": "paper"}
        out.update({f"nlpo.{k}": v for k, v in nlpo.items()})
    if table.startswith("Table 3"):
        kl = HEADLINE_KL[algorithm]
    else:
        kl = (variant or "").split("target_kl=", 1)[-1]
        kl = kl if kl == "inf" else float(kl)
    out[f"{section}.kl_target"] = kl
    return out


def table_settings(task: str, algorithm: str, reward: str | None, variant: str | None) -> dict | str:
    """The stated settings of a row of CommonGen, CNN/DailyMail, ToTTo, NarrativeQA, WMT16 or DailyDialog, from
    the task's hyper-parameter table (TABLES); a reason (str) when the paper states none for the row."""
    spec = TABLES[task]
    out = {f"eval.{k}": v for k, v in spec["decoding"].items()}
    if algorithm == "Zero-Shot":
        return out
    if algorithm == "Supervised":
        if spec["supervised"] is None:
            return (
                f"{spec['table']} has no supervised block (the paper's supervised model for this task is not "
                "one it trained with stated settings)"
            )
        return {**out, **{f"supervised.{k}": v for k, v in spec["supervised"].items()}}
    if algorithm not in SECTION:
        return f"{algorithm} is no algorithm of grue's; the paper states no settings for it"
    section, block = SECTION[algorithm], ({**spec["rl"], **spec["warm"]} if algorithm in WARM else spec["rl"])
    out[f"{section}.batch_unit"] = "tokens"  # the table counts steps: generated tokens
    out[f"{section}.rollout_size"] = block["steps"]
    iterations, rest = divmod(block["total"], block["steps"])
    assert rest == 0, f"{spec['table']}: {block['total']} steps in all is no whole number of updates"
    out[f"{section}.iterations"] = iterations
    for key, value in block.items():
        if key in ("steps", "total") or (key in NLPO_ONLY and section != "nlpo"):
            continue
        out[f"generation.{key}" if key in GENERATION else f"{section}.{key}"] = value
    if section == "nlpo":
        out["nlpo.mask_refresh"] = "paper"  # the paper's NLPO: RL4LMs' never-refreshed masking policy
    if variant and variant.startswith("rollout top_k="):  # CommonGen Table 13's rows name their rollout top k
        out["generation.top_k"] = int(variant.split("=", 1)[1])
    grue_reward = REWARDS.get((task, reward, algorithm in WARM))
    out["run.reward"] = grue_reward or f"{NO_GRUE_REWARD}{reward}"
    if grue_reward == "intent_meteor" and algorithm not in WARM:
        out["run.reward_args"] = {}  # Table 32: meteor coeff 0.25, intent coeff 0.75 = intent_meteor's defaults
    return out


def stated(
    task: str, algorithm: str, table: str, variant: str | None, from_paper: bool, reward: str | None = None
) -> tuple[dict | str, str]:
    """(settings, reason): the settings the source states for a row (``reward``: its reward column), or
    (``unknown``, why)."""
    if not from_paper:
        return UNKNOWN, "a third party's quote of the number; it does not state the settings that made it"
    if task == "imdb" and table.split(" (")[0] in ("Table 3", "Table 5", "Table 6", "Table 7"):
        if table.startswith(("Table 6", "Table 7")) and algorithm != "Zero-Shot":
            return UNKNOWN, f"{table.split(' (')[0]} is an ablation whose settings are not transcribed here"
        return imdb_settings(algorithm, table, variant), ""
    if task in TABLES:
        settings = table_settings(task, algorithm, reward, variant)
        return (settings, "") if isinstance(settings, dict) else (UNKNOWN, settings)
    return UNKNOWN, f"no hyper-parameter table of the paper is transcribed for task {task}"
