"""The command line: commands, console output, demo, calibration."""
