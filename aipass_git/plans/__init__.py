"""Plans: phases as events on refs/aipass/plans/<id> (ARCHITECTURE.md, section 10)."""
