"""Sync across clones: event refs through any git remote (ARCHITECTURE.md, section 8)."""
