"""InfoPO: information-driven policy optimization for user-centric LLM agents."""

__version__ = "0.1.0"
