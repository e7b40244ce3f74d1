"""How a target is started and watched: ``local`` (pinned processes, the default)."""
