"""Clocks and the wake-up scheduler (APScheduler 3.x, in memory: the database is the truth)."""
