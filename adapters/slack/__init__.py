"""The Slack adapter: Bolt's async app over HTTP or Socket Mode, converting Slack payloads to
invocations and neutral messages to Slack markup. No business rule lives here.

Modules, each one concept:

- ``render``: neutral ``Message`` → mrkdwn text and Block Kit (pure, escapes all user text);
- ``inbound``: Slack payloads → ``Invocation`` (pure; decodes Slack's own text encoding);
- ``tenants``: which workspace (tenant) a request, a message or a configured admin is of (pure);
- ``workspaces``: which bot token speaks in a workspace (one token, or OAuth installs);
- ``views``: modals and App Home as Block Kit, and reading their submissions back (pure);
- ``pacing``: per-channel pacing of posts (Slack allows about one message a second);
- ``messenger``: the outbox's ``Messenger`` (chat.postMessage, errors, never twice);
- ``directory``: time zones and workspace admins from ``users.info``;
- ``replies``: getting a command's replies to the caller (ephemeral, channel, DM);
- ``listeners``: the Bolt listeners: ack at once, do the work after;
- ``platform``: lifecycle (HTTP server or Socket Mode, back-off, clean stop);
- ``manifest``: the app manifest ``cohortbot slack-manifest`` prints.
"""
