"""The contract's two tables as Django models (an installed app with no migrations)."""
