"""grue.config: type coercion, --set parsing, resolution order, YAML errors, round trip."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pytest

from grue.algorithms import from_dict, resolve
from grue.config import Config, GenerationConfig, RunConfig, coerce, parse_set
from grue.errors import GrueError


# ---- coerce ----------------------------------------------------------------------------------


def test_coerce_int():
    assert coerce(3, int, "ppo.epochs") == 3
    for bad in (True, 3.0, "3", None):
        with pytest.raises(GrueError, match="ppo.epochs"):
            coerce(bad, int, "ppo.epochs")


def test_coerce_float():
    assert coerce(2, float, "ppo.lr") == 2.0 and isinstance(coerce(2, float, "ppo.lr"), float)
    assert coerce(0.5, float, "ppo.lr") == 0.5
    assert coerce("1e-6", float, "ppo.lr") == 1e-6  # YAML 1.1 reads 1e-6 as a string
    for bad in (True, "fast", None, [1.0]):
        with pytest.raises(GrueError, match="ppo.lr"):
            coerce(bad, float, "ppo.lr")


def test_coerce_bool():
    assert coerce(True, bool, "run.builtin_prompts") is True
    assert coerce(False, bool, "run.builtin_prompts") is False
    for bad in (1, 0, "true", "yes", None):
        with pytest.raises(GrueError, match="run.builtin_prompts"):
            coerce(bad, bool, "run.builtin_prompts")


def test_coerce_str():
    assert coerce("gpt2", str, "run.model") == "gpt2"
    assert coerce(7, str, "run.model") == "7"
    with pytest.raises(GrueError, match="run.model"):
        coerce(True, str, "run.model")


@pytest.mark.parametrize("tp", [float | None, Optional[float]])
def test_coerce_optional(tp):
    assert coerce(None, tp, "ppo.kl_target") is None
    assert coerce("null", tp, "ppo.kl_target") is None
    assert coerce("None", tp, "ppo.kl_target") is None
    assert coerce(0.2, tp, "ppo.kl_target") == 0.2
    assert coerce(1, tp, "ppo.kl_target") == 1.0
    with pytest.raises(GrueError, match="ppo.kl_target"):
        coerce("high", tp, "ppo.kl_target")


def test_coerce_choices():
    choices = ("no", "bf16", "fp16")
    assert coerce("bf16", str, "run.mixed_precision", choices) == "bf16"
    with pytest.raises(GrueError, match=r"run\.mixed_precision.*fp8.*no, bf16, fp16"):
        coerce("fp8", str, "run.mixed_precision", choices)


# ---- parse_set -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cfg() -> Config:
    return resolve("imdb", "ppo")


def test_parse_set_section_key(cfg):
    assert parse_set("ppo.lr=1e-5", cfg) == ("ppo", "lr", "1e-5")  # coerced to float later
    assert parse_set("generation.top_k=10", cfg) == ("generation", "top_k", 10)
    assert parse_set("ppo.kl_target=null", cfg) == ("ppo", "kl_target", None)
    assert parse_set("run.model = tiny-gpt2", cfg) == ("run", "model", "tiny-gpt2")
    assert parse_set("run.output_dir=", cfg) == ("run", "output_dir", "")


def test_parse_set_bare_key(cfg):
    assert parse_set("truncation_side=right", cfg) == ("generation", "truncation_side", "right")
    assert parse_set("num_beams=4", cfg) == ("eval", "num_beams", 4)
    with pytest.raises(GrueError, match="several sections .generation, eval.; write section.key"):
        parse_set("top_p=0.9", cfg)
    assert parse_set("epochs=3", cfg) == ("ppo", "epochs", 3)
    assert parse_set("builtin_prompts=true", cfg) == ("run", "builtin_prompts", True)


def test_parse_set_errors(cfg):
    with pytest.raises(GrueError, match="key=value"):
        parse_set("ppo.lr", cfg)
    with pytest.raises(GrueError, match="key=value"):
        parse_set("=3", cfg)
    with pytest.raises(GrueError, match="no_such_key"):
        parse_set("no_such_key=1", cfg)
    with pytest.raises(GrueError, match=r"nosection\.lr"):
        parse_set("nosection.lr=1", cfg)


@dataclass
class _ToyAlgo:
    seed: int = 0
    lr: float = 0.1


def test_parse_set_ambiguous_bare_key():
    toy = Config(RunConfig(algo="toy"), GenerationConfig(), _ToyAlgo())
    with pytest.raises(GrueError, match=r"seed.*run, toy"):
        parse_set("seed=1", toy)
    assert parse_set("toy.seed=1", toy) == ("toy", "seed", 1)
    assert parse_set("lr=0.5", toy) == ("toy", "lr", 0.5)


# ---- resolve ---------------------------------------------------------------------------------


def test_resolve_imdb_ppo_paper_settings(cfg):
    p, g, r = cfg.algo, cfg.generation, cfg.run
    assert (p.lr, p.rollout_size, p.minibatch_size, p.epochs) == (1e-6, 1280, 64, 5)
    assert (p.kl_coef, p.kl_target, p.gamma, p.lam) == (0.01, 0.5, 0.99, 0.95)  # paper Sec. B.3.1, Tables 3 and 5
    assert (p.clip, p.vf_coef, p.max_grad_norm) == (0.2, 0.5, 0.5)
    assert (g.top_k, g.min_new_tokens, g.max_new_tokens, g.do_sample) == (50, 48, 48, True)
    assert (r.model, r.reward, r.task, r.algo) == ("lvwerra/gpt2-imdb", "sentiment", "imdb", "ppo")
    assert cfg.task_version == "2.0"
    assert set(cfg.sections()) == {"run", "generation", "eval", "ppo"}


def test_resolve_smoke_preset():
    cfg = resolve("imdb", "ppo", preset="smoke")
    assert cfg.run.model == "tiny-gpt2" and cfg.run.reward == "lexicon" and cfg.run.builtin_prompts is True
    assert cfg.generation.max_new_tokens == 16 and cfg.algo.kl_target is None and cfg.algo.lr == 7e-4
    assert cfg.algo.gamma == 0.99  # untouched by the preset: from ppo.yaml


def test_algo_dot_section_applies_to_that_algorithms_runs_only(tmp_path):
    """A preset (or --config file) section ``ALGO.SECTION``: SECTION for ALGO's runs, skipped for the others."""
    f = tmp_path / "c.yaml"
    f.write_text("nlpo.eval:\n  num_beams: 3\neval:\n  max_new_tokens: 70\n")
    ppo, nlpo = (resolve("imdb", algo, config_file=str(f)).eval for algo in ("ppo", "nlpo"))
    assert (ppo.num_beams, ppo.max_new_tokens, nlpo.num_beams, nlpo.max_new_tokens) == (1, 70, 3, 70)
    for bad in ("ppo.ppo", "ppo.nlpo", "foo.eval", "ppo.evals"):
        f.write_text(f"{bad}:\n  num_beams: 3\n")
        with pytest.raises(GrueError, match=rf"unknown section '{bad}'"):
            resolve("imdb", "ppo", config_file=str(f))


def test_resolve_precedence(tmp_path):
    # kl_coef: ppo.yaml 0.01 < preset rl4lms-97df0bd 0.1 < --set
    assert resolve("imdb", "ppo").algo.kl_coef == 0.01
    assert resolve("imdb", "ppo", preset="rl4lms-97df0bd").algo.kl_coef == 0.1
    cfg = resolve("imdb", "ppo", preset="smoke", sets=["ppo.kl_coef=0.05", "generation.top_k=7"])
    assert cfg.algo.kl_coef == 0.05 and cfg.generation.top_k == 7
    # --config beats the preset, flags beat --config, --set beats flags
    f = tmp_path / "c.yaml"
    f.write_text("ppo:\n  kl_coef: 0.02\n  epochs: 2\ngeneration:\n  top_k: 3\n")
    cfg = resolve("imdb", "ppo", preset="smoke", config_file=str(f), flags={"algo.epochs": 9, "generation.top_k": 4})
    assert (cfg.algo.kl_coef, cfg.algo.epochs, cfg.generation.top_k) == (0.02, 9, 4)
    cfg = resolve("imdb", "ppo", config_file=str(f), flags={"algo.epochs": 9}, sets=["epochs=11"])
    assert cfg.algo.epochs == 11


def test_resolve_set_is_type_checked():
    with pytest.raises(GrueError, match="ppo.epochs"):
        resolve("imdb", "ppo", sets=["ppo.epochs=2.5"])
    with pytest.raises(GrueError, match=r"ppo\.nope"):
        resolve("imdb", "ppo", sets=["ppo.nope=1"])
    with pytest.raises(GrueError, match="run.mixed_precision"):
        resolve("imdb", "ppo", sets=["run.mixed_precision=fp8"])
    with pytest.raises(GrueError, match="command line"):
        resolve("imdb", "ppo", sets=["run.task=other"])


def test_resolve_unknown_task_algo_preset():
    with pytest.raises(GrueError, match=r"unknown task 'nope'.*accepted: .*imdb"):
        resolve("nope", "ppo")
    with pytest.raises(GrueError, match=r"unknown algorithm 'nope'.*accepted: .*ppo"):
        resolve("imdb", "nope")
    with pytest.raises(GrueError, match=r"unknown preset 'nope'.*accepted: .*smoke"):
        resolve("imdb", "ppo", preset="nope")


def test_malformed_yaml_config_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("ppo:\n  lr: [1e-5\n  epochs: 3\n")
    with pytest.raises(GrueError, match="bad.yaml") as info:
        resolve("imdb", "ppo", config_file=str(bad))
    assert "malformed YAML" in str(info.value)


def test_config_file_errors(tmp_path):
    not_a_mapping = tmp_path / "list.yaml"
    not_a_mapping.write_text("- 1\n- 2\n")
    with pytest.raises(GrueError, match="list.yaml"):
        resolve("imdb", "ppo", config_file=str(not_a_mapping))
    with pytest.raises(GrueError, match="missing.yaml"):
        resolve("imdb", "ppo", config_file=str(tmp_path / "missing.yaml"))
    unknown_section = tmp_path / "sec.yaml"
    unknown_section.write_text("training:\n  lr: 0.1\n")
    with pytest.raises(GrueError, match=r"sec\.yaml.*training"):
        resolve("imdb", "ppo", config_file=str(unknown_section))
    wrong_type = tmp_path / "type.yaml"
    wrong_type.write_text("ppo:\n  epochs: many\n")
    with pytest.raises(GrueError, match=r"type\.yaml.*ppo\.epochs"):
        resolve("imdb", "ppo", config_file=str(wrong_type))
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert resolve("imdb", "ppo", config_file=str(empty)).algo.lr == 1e-6


def test_from_dict_round_trip():
    cfg = resolve("imdb", "ppo", preset="smoke", sets=["ppo.value_clip=0.3", "seed=5"])
    back = from_dict(cfg.to_dict(), "config.yaml")
    assert back.run == cfg.run and back.generation == cfg.generation and back.algo == cfg.algo
    assert back.task_version == cfg.task_version == "2.0"
    assert back.to_dict() == cfg.to_dict()
    assert back.algo.value_clip == 0.3 and back.run.seed == 5


def test_from_dict_rejects_bad_input():
    data = resolve("imdb", "ppo").to_dict()
    with pytest.raises(GrueError, match="saved.yaml"):
        from_dict({**data, "run": {**data["run"], "algo": "nope"}}, "saved.yaml")
    with pytest.raises(GrueError, match=r"saved\.yaml.*ppo\.epochs"):
        from_dict({**data, "ppo": {**data["ppo"], "epochs": "five"}}, "saved.yaml")


@pytest.mark.parametrize("section", ["generation", "eval"])
@pytest.mark.parametrize(
    "key,value,accepted",
    [
        ("top_k", -5, ">= 0"),
        ("top_p", 0, "in (0, 1]"),
        ("top_p", 1.5, "in (0, 1]"),
        ("temperature", 0, "> 0"),
        ("temperature", -1.0, "> 0"),
        ("max_new_tokens", 0, ">= 1"),
        ("min_new_tokens", 99, ">= 0 and <= {section}.max_new_tokens ("),
        ("min_new_tokens", -1, ">= 0 and <= {section}.max_new_tokens ("),
    ],
)
def test_impossible_decoding_settings_are_refused(section, key, value, accepted):
    """Each impossible value is one line naming the key, the value and what is accepted (rollouts and evaluation)."""
    with pytest.raises(GrueError) as e:
        resolve("imdb", "ppo", preset="smoke", sets=[f"{section}.{key}={value}"])
    assert str(e.value).startswith(f"{section}.{key} must be {accepted.format(section=section)}")
    assert f"got {float(value) if key in ('top_p', 'temperature') else value}" in str(e.value)


def test_beams_and_the_edges_of_the_accepted_ranges():
    with pytest.raises(GrueError, match=r"^eval.num_beams must be >= 1 \(1: no beam search\), got 0$"):
        resolve("commongen", "ppo", sets=["eval.num_beams=0"])
    cfg = resolve(
        "imdb",
        "ppo",
        sets=[
            "generation.top_k=0",
            "generation.top_p=1",
            "eval.min_new_tokens=48",
            "eval.max_new_tokens=48",
            "generation.temperature=0.01",
        ],
    )
    assert (cfg.generation.top_k, cfg.generation.top_p, cfg.eval.min_new_tokens) == (0, 1.0, 48)


def test_mistyped_names_get_a_suggestion():
    with pytest.raises(GrueError, match=r"^unknown task 'imbd' \(did you mean 'imdb'\?\); accepted: "):
        resolve("imbd", "ppo")
    with pytest.raises(GrueError, match=r"^unknown algorithm 'ppo2' \(did you mean 'ppo'\?\)"):
        resolve("imdb", "ppo2")
    with pytest.raises(GrueError, match=r"unknown preset 'smok' for task 'imdb' \(did you mean 'smoke'\?\)"):
        resolve("imdb", "ppo", preset="smok")
    with pytest.raises(GrueError, match=r"^unknown key 'ppo.lrr' \(did you mean 'ppo.lr'\?\); accepted in ppo: "):
        resolve("imdb", "ppo", sets=["ppo.lrr=1"])
    with pytest.raises(GrueError, match=r"^unknown task 'zzz'; accepted: "):  # nothing close: no suggestion
        resolve("zzz", "ppo")


def choice_fields() -> list[tuple[str, str, str]]:
    """(section, field, choice) for every choice of every string field with a choice list, in every config section."""
    import dataclasses

    from grue.algorithms import ALGORITHMS
    from grue.config import EvalConfig, GenerationConfig, RunConfig

    sections = {
        "run": RunConfig,
        "generation": GenerationConfig,
        "eval": EvalConfig,
        **{a: m.CONFIG for a, m in ALGORITHMS.items()},
    }
    return [
        (sec, f.name, c)
        for sec, cls in sections.items()
        for f in dataclasses.fields(cls)
        for c in f.metadata.get("choices", ())
    ]


def test_every_choice_of_every_string_field_is_taken_literally_by_set_and_by_a_config_file(tmp_path):
    """YAML 1.1 would read `no` as False (run.mixed_precision=no), `none` could look like null: each choice,
    given as plain text, arrives as that exact string, through --set and through a YAML config file."""
    cases = choice_fields()
    assert (
        ("run", "mixed_precision", "no") in cases
        and ("eval", "sacrebleu_tokenize", "none") in cases
        and len(cases) > 60
    )
    for sec, name, choice in cases:
        algo = sec if sec not in ("run", "generation", "eval") else "ppo"
        task = "imdb" if algo != "supervised" else "commongen"
        cfg = resolve(task, algo, sets=[f"{sec}.{name}={choice}"])
        assert getattr(cfg.sections()[sec], name) == choice, (sec, name, choice)
        file = tmp_path / f"{sec}-{name}-{choice}.yaml"
        file.write_text(f"{sec}:\n  {name}: {choice}\n")
        cfg = resolve(task, algo, config_file=str(file))
        assert getattr(cfg.sections()[sec], name) == choice, (sec, name, choice, "file")


@pytest.mark.parametrize("text", ["no", "off", "yes", "on", "null", "~", "true", "1e3", "0x1F", "None"])
def test_a_string_field_on_the_command_line_keeps_the_text_it_is_given(text):
    sec, name, value = parse_set(f"run.prompt_variant={text}", resolve("imdb", "ppo"))
    assert (sec, name, value) == ("run", "prompt_variant", text)
    assert parse_set(f"run.prompt_variant='{text}'", resolve("imdb", "ppo"))[2] == text  # quoted: the same text
    assert resolve("imdb", "ppo", sets=["ppo.lr=1e-3"]).algo.lr == 1e-3  # a number field still reads a number
