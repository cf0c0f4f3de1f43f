"""The Matrix adapter (matrix-nio): converts room events into invocations and renders
neutral messages as Matrix events. Rules live in the core.

- ``inbound``: room events → command text (pure);
- ``render``: neutral ``Message`` → Matrix content (pure);
- ``creators``: who created each room, where room version 12 makes them its admins;
- ``platform``: lifecycle, sync, replies, the ``Messenger`` and the ``Directory``.
"""
