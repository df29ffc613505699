"""Grading a class: intake of the submissions, here or on a Dask cluster; the batch writes the class outputs."""
