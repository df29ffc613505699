"""One submission's pipeline: the stages, their composition for grading, the memo recording, its report files."""
