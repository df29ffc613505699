"""Shared by every process: grading.toml, the verified MNIST copy, code generation."""
