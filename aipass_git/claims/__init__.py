"""Claims: paths an agent is about to change, for a while (ARCHITECTURE.md, section 13)."""
