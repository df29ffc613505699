"""Code that runs inside the student's kernel, shipped there as source."""
