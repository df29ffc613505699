"""Autograder for the practical « Implémenter des réseaux de neurones avec Keras »."""

__version__ = "0.1.0"
