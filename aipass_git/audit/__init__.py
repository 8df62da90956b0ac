"""The standards engine (the "seedgo" role): checks every agent's work must pass."""
