"""Mock HTTP APIs of the model vendors, for running the real agent CLIs in tests.

    with MockAPI("anthropic", [shell("touch made-by-tool"), text("Done.")]) as api:
        run claude with ANTHROPIC_BASE_URL=api.url (see tests/real_clis.py prepare())

server.py serves; script.py holds the actions and picks one per main request; each
vendor module (anthropic, gemini, openai) has three functions: classify(request) says
whether a request is the main conversation and gives its turn and session, render()
turns an action into that vendor's reply, side() answers everything else. Each module
documents what its CLI was measured to send.
"""

from .script import Script, error, rate_limit, shell, slow, text
from .server import MockAPI
from .wire import Request

__all__ = ["MockAPI", "Request", "Script", "error", "rate_limit", "shell", "slow", "text"]
