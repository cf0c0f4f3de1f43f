"""Async orchestration: command handlers, planning and delivery, through ports only."""
