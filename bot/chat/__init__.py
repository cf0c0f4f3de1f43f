"""Pure chat layer: the command grammar, help text and platform-neutral messages."""
