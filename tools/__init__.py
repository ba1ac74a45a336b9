"""Developer tooling, outside the Django apps: nothing here is imported by the application."""
