"""What runs on the student's machine: the self-check, and the bundle that makes verifier.py."""
