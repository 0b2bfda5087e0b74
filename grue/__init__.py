"""grue: reinforcement learning for language models, and the GRUE benchmark."""

__version__ = "0.2.0"
