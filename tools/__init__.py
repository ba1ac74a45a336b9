"""Developer tooling that lives outside the Django apps (standard library only)."""
