"""Labeling's transitions, one module per topic: annotations (submit, undo), consensus, adjudication,
gold, appeals, honeypots, relabel, crowd import, label errors. Numeric cores are in `labeling.stats`.

The annotation API and the exceptions views map to HTTP errors are re-exported here, so
`from labeling.services import SubmissionRejected` keeps working as it did when this was one module.
"""

from .adjudication import AdjudicationClosed
from .annotations import SubmissionRejected, SubmitResult, annotation_retract, annotation_submit, check_labels

__all__ = [
    "AdjudicationClosed",
    "SubmissionRejected",
    "SubmitResult",
    "annotation_retract",
    "annotation_submit",
    "check_labels",
]
