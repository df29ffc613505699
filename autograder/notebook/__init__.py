"""From a submitted file to an execution plan: load, map cells to questions, plan hidden steps."""
