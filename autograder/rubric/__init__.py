"""The clean scoring process: artifacts of each question, input spaces, contamination, the rubric's checks and the hidden pytest suite."""
