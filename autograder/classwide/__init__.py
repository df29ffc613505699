"""The class outputs: grades.csv and summary.json, the class report, its charts, copies, the roster and LMS files."""
