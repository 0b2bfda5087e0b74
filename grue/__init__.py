"""grue: reinforcement learning for language models, and the GRUE benchmark."""

__version__ = "0.1.0"
