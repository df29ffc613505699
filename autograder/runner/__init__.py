"""The grader's side of execution: the sandboxed kernel, bounded outputs, the scoring process."""
