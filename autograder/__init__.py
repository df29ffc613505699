"""Autograder for the practical « Implémenter des réseaux de neurones avec Keras »."""

import sys

__version__ = "0.1.0"

# nbformat imports jsonschema, which imports rfc3987_syntax when it is installed (jupyter-events pulls it
# in through jsonschema[format-nongpl]) to check the "iri" formats, and that compiles 38 lark grammars:
# a second of CPU in every process that reads a notebook (the CLI, each grading worker).  No schema this
# package validates uses those formats; without the module jsonschema leaves them unchecked.
sys.modules.setdefault("rfc3987_syntax", None)
