"""Grading a class: intake of submissions, one submission's pipeline, reports."""
