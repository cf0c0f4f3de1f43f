"""The Matrix adapter (matrix-nio): converts room events into invocations and renders
neutral messages as Matrix events. Rules live in the core."""
