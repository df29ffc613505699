"""Other tools: nbgrader release, the otter-grader export and its plugin."""
