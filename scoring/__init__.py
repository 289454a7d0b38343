"""Batch scoring of whole cohort files on Ray Data with a registered model.

``scoring.cohort.score_cohort`` is the function API and ``python -m scoring``
the command. This module imports nothing, so that the scoring actors load
only ``scoring.batch`` and what it needs.
"""
