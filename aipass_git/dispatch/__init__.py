"""Dispatch: wake an agent's CLI on its desk, watched by a supervisor, queued and bounced."""
