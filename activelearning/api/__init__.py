"""REST for the model registry, rounds and threshold approval (views in views.py, routes in urls.py)."""
