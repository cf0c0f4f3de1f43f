"""Platform adapters: convert platform events to invocations and render neutral messages."""
