"""The Hugging Face Hub, asked once per process whether it answers.

Offline, huggingface_hub retries each file of a model for about 23 seconds (five retries with
backoff) before it gives up, and a model asks for several files. So the first time grue is about
to load something that is not on disk (``needs_hub``), ``offline()`` tries one HTTP request to the
Hub with a short timeout; when nothing answers, it switches huggingface_hub, transformers and
datasets into their offline mode for the rest of the process, as ``HF_HUB_OFFLINE=1`` does: what
is in the local cache still loads, anything else fails at once. ``missing`` then says in one line
what is missing and which setting takes a local path instead. ``load`` does all this around a
library's loading call, and remembers a load that failed, so that nothing is asked for twice in
one process.
"""

from __future__ import annotations

import functools
import os
import sys
import urllib.error
import urllib.request
from typing import Callable, TypeVar

PROBE_TIMEOUT_S = 3.0
"""How long the one probe of the Hub waits for an answer."""
_TRUE = ("1", "on", "yes", "true")

_failures: dict[tuple[str, str, str], tuple[str, bool]] = {}
"""(what, name, setting) -> the error of a load that failed in this process: (message, offline_missing)."""
T = TypeVar("T")


def endpoint() -> str:
    """The Hub's address: ``$HF_ENDPOINT``, else https://huggingface.co."""
    return os.environ.get("HF_ENDPOINT") or "https://huggingface.co"


def offline_by_setting() -> bool:
    """Whether the user turned the Hub off (``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE``)."""
    return any(os.environ.get(k, "").strip().lower() in _TRUE for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def answers(url: str, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """Whether an HTTP server answers at ``url`` (any status counts, an error page too). Proxies are taken
    from the environment, as huggingface_hub takes them."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout):
            return True
    except urllib.error.HTTPError:
        return True
    except (OSError, ValueError):  # URLError, refused, timed out, no such host, a malformed HF_ENDPOINT
        return False


def go_offline() -> None:
    """Put huggingface_hub, transformers and datasets into offline mode for the rest of this process (and its
    children): cached files load, nothing is requested."""
    os.environ["HF_HUB_OFFLINE"] = "1"  # read by the libraries not yet imported, and by child processes
    hub = sys.modules.get("huggingface_hub.constants")
    if hub is not None:
        hub.HF_HUB_OFFLINE = True
    ds = sys.modules.get("datasets.config")
    if ds is not None:
        ds.HF_HUB_OFFLINE = ds.HF_DATASETS_OFFLINE = True
    tf = sys.modules.get("transformers.utils.hub")
    if tf is not None and hasattr(tf, "_is_offline_mode"):  # transformers 4.x keeps its own flag
        tf._is_offline_mode = True


@functools.lru_cache(maxsize=1)
def offline_reason() -> str | None:
    """None when the Hub answers; else why not ("HF_HUB_OFFLINE is set", or that it cannot be reached, after
    which offline mode is switched on). The probe runs at most once per process."""
    if offline_by_setting():
        return "HF_HUB_OFFLINE is set"
    if answers(endpoint()):
        return None
    go_offline()
    return f"the Hub ({endpoint()}) cannot be reached"


def offline() -> bool:
    """True when the Hub is off by setting or does not answer (see ``offline_reason``)."""
    return offline_reason() is not None


def needs_hub(name: str) -> bool:
    """Whether loading ``name`` may ask the Hub: it is not an existing local path."""
    return bool(name) and not os.path.exists(name)


def prepare(name: str) -> None:
    """Call before loading ``name`` with a Hugging Face library: probes the Hub once if ``name`` is not on disk."""
    if needs_hub(name):
        offline()


def missing(what: str, name: str, setting: str) -> str:
    """The one-line reason a Hub id could not be loaded offline: ``what`` (e.g. "the sentiment classifier")
    ``name`` is not in the local cache, the Hub is off or unreachable, and ``setting`` takes a local copy."""
    return (
        f"could not load {what} '{name}': it is not in the local Hugging Face cache, and {offline_reason()}; "
        f"pass a local copy with {setting}"
    )


def not_on_hub_offline(e: BaseException) -> bool:
    """Whether the load error ``e`` (or one it came from) says: not in the local cache, and offline."""
    while e is not None:
        if type(e).__name__ in ("LocalEntryNotFoundError", "OfflineModeIsEnabled") or "OfflineModeIsEnabled" in str(e):
            return True
        e = e.__cause__ or e.__context__
    return False


class LoadFailed(Exception):
    """A model or dataset could not be loaded; the message is one line for the user. ``offline_missing``:
    the reason is that it is not cached and the Hub is off (the message then names the setting to use)."""

    def __init__(self, message: str, offline_missing: bool = False):
        super().__init__(message)
        self.offline_missing = offline_missing


def load(what: str, name: str, setting: str, loader: Callable[[], T]) -> T:
    """``loader()``, which loads ``name`` (``what`` it is, e.g. "the sentiment classifier") with a Hugging Face
    library, after probing the Hub once if ``name`` is not on disk.

    A failure raises LoadFailed with one line naming ``setting``: ``missing(...)`` when the Hub is off and
    ``name`` is not cached, else the first line of the library's error. A failed load is remembered: the
    same ``(what, name, setting)`` again in this process raises the same line at once, without asking.
    """
    key = (what, name, setting)
    if key in _failures:
        raise LoadFailed(*_failures[key])
    prepare(name)
    try:
        return loader()
    except Exception as e:  # noqa: BLE001 - any loading error becomes one line
        gone = needs_hub(name) and offline() and not_on_hub_offline(e)
        if gone:
            message = missing(what, name, setting)
        else:
            text = str(e).strip().splitlines()
            first = (text[0] if text else "")[:300]
            message = f"could not load {what} '{name}': {type(e).__name__}: {first}; a local copy goes in {setting}"
        _failures[key] = (message, gone)
        raise LoadFailed(message, gone) from e
