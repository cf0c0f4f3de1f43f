"""The terminal adapter: try every command from a shell, script it, test the core end to end."""
