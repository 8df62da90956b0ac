"""Rules on events and schedules, the sweeps that fire them, and the daemon (ARCHITECTURE.md, section 11)."""
