"""grue.hub: the Hub is probed once per process, a missing model fails at once with one line naming the setting
that takes a local copy, and nothing is asked for twice."""

from __future__ import annotations

import http.server
import json
import socket
import subprocess
import sys
import threading

import pytest

from grue import hub
from grue.errors import GrueError
from conftest import REPO, cli_env


def closed_port_url() -> str:
    with socket.socket() as s:  # a port that was just free: nothing listens there
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def test_answers_is_true_for_any_http_answer_and_false_for_silence():
    class NotFound(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self):  # an error page is still an answer: the Hub is there
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), NotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        assert hub.answers(f"http://127.0.0.1:{server.server_port}/", timeout=5)
    finally:
        server.shutdown()
    assert not hub.answers(closed_port_url(), timeout=5)
    assert not hub.answers("not a url")


PROBE = """
import json, time
from grue import hub
from grue.errors import GrueError
from grue.models import load_tokenizer
calls = []
def counted():
    calls.append(1)
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained("no-such-org/no-such-model")
t0 = time.perf_counter()
errors = []
for _ in range(2):
    try:
        hub.load("the tokenizer of", "no-such-org/no-such-model", "--model PATH", counted)
    except hub.LoadFailed as e:
        errors.append(str(e))
try:
    load_tokenizer("no-such-org/other-model")
except GrueError as e:
    errors.append(str(e))
import huggingface_hub.constants as c
print(json.dumps({"errors": errors, "calls": len(calls), "seconds": time.perf_counter() - t0,
                  "reason": hub.offline_reason(), "offline_mode": c.HF_HUB_OFFLINE}))
"""


def test_an_unreachable_hub_is_detected_once_and_models_fail_at_once():
    """No HF_HUB_OFFLINE and nothing at the Hub's address: one probe switches the libraries to offline mode, each
    missing model is one line naming the setting, and a failed load is not asked again. (Without the probe,
    huggingface_hub would retry each file for about 23 s.)"""
    env = {
        k: v for k, v in cli_env().items() if k not in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")
    }
    env["HF_ENDPOINT"] = url = closed_port_url()
    p = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert out["reason"] == f"the Hub ({url}) cannot be reached" and out["offline_mode"] is True
    assert out["calls"] == 1, "the second load of the same model is answered from memory"
    first = (
        "could not load the tokenizer of 'no-such-org/no-such-model': it is not in the local Hugging Face cache, "
        f"and the Hub ({url}) cannot be reached; pass a local copy with --model PATH"
    )
    assert out["errors"][:2] == [first, first]
    assert out["errors"][2].startswith(
        "could not load the tokenizer of 'no-such-org/other-model': it is not in the local"
    )
    assert out["seconds"] < 15, out  # the retries alone would sleep 23 s per file
    assert "Retrying" not in p.stderr


def test_skip_reasons_and_reward_errors_name_their_own_setting():
    """Offline (HF_HUB_OFFLINE, set by conftest), the sentiment metric names eval.sentiment_model and the sentiment
    reward names run.reward_model."""
    from grue.metrics import EvalBatch, MetricOptions, MetricSkipped, metric_function
    from grue.rewards import classifier_sentiment

    batch = EvalBatch(["A film"], [" that I liked."], [["A film that I liked."]])
    with pytest.raises(MetricSkipped) as e:
        metric_function("sentiment")(batch, MetricOptions(sentiment_model="no-such-org/no-such-classifier"))
    assert str(e.value) == (
        "could not load the sentiment classifier 'no-such-org/no-such-classifier': it is not in the "
        "local Hugging Face cache, and HF_HUB_OFFLINE is set; pass a local copy with "
        "--set eval.sentiment_model=PATH"
    )
    with pytest.raises(
        GrueError,
        match=r"pass a local copy with --set run\.reward_model=PATH, or train on the offline "
        r"lexicon with --set run\.reward=lexicon$",
    ):
        classifier_sentiment(["A film"], [" that I liked."], [[""]], [{}], model="no-such-org/no-such-classifier")
    with pytest.raises(
        MetricSkipped, match=r"pass a local copy with --set eval\.bertscore_model=PATH --set eval\.bertscore_layers=N$"
    ):
        metric_function("bertscore")(
            batch, MetricOptions(bertscore_model="no-such-org/no-such-encoder", bertscore_layers=2)
        )


def test_a_local_path_never_asks_the_hub(tmp_path):
    assert not hub.needs_hub(str(tmp_path)) and hub.needs_hub("gpt2") and not hub.needs_hub("")
