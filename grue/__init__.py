"""grue: reinforcement learning for language models, and the GRUE benchmark.

The Python API (grue.api): ``grue.train``, ``grue.evaluate`` and ``grue.load_results``; each imports torch or pandas
only when called.
"""

__version__ = "0.2.0"

from grue.api import evaluate, load_results, train  # noqa: E402  (after __version__, which the library reads)

__all__ = ["__version__", "evaluate", "load_results", "train"]
