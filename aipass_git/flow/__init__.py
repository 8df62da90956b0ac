"""Plans in motion: starting ready phases, ending finished ones, timeouts, and closing."""
