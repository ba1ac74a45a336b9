"""Labeling's numeric cores: inter-annotator agreement and Dawid–Skene. Plain Python and numpy;
they import no Django (checked by `grep -rn django labeling/stats`), so they run and test alone."""
