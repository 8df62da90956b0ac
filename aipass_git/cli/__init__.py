"""The command line (ARCHITECTURE.md, section 1).

Help is click's plain text, not typer's rich panels: the same words, and `-h` starts in
the time of an ordinary command instead of ~150 ms more for rich.markdown and markdown_it.
typer reads TYPER_USE_RICH once, when typer.core is first imported; it is set only for
that moment (a user's own setting wins) so that processes started later inherit nothing.
"""

import os

_ours = "TYPER_USE_RICH" not in os.environ
if _ours:
    os.environ["TYPER_USE_RICH"] = "0"
import typer.core  # noqa: E402,F401 (unused: imported so that it reads the setting above)

if _ours:
    del os.environ["TYPER_USE_RICH"]
