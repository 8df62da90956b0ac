"""aipass-git: identity, memory, mail and dispatch for AI coding agents, kept inside git."""

__version__ = "0.1.0"
