# Run by each candidate interpreter (any Python, 2.7 included): exits 0 and prints its identity when it is a
# CPython that pyproject.toml's requires-python admits.  tools/ensure-venv and tests/test_install.py read the range here.
import platform
import sys

LOWEST, HIGHEST = (3, 11), (3, 13)    # inclusive minor versions; TensorFlow's wheels stop at 3.13

if platform.python_implementation() == "CPython" and LOWEST <= tuple(sys.version_info[:2]) <= HIGHEST:
    print("%s %s" % (platform.python_version(), sys.executable))
    sys.exit(0)
sys.stderr.write("rejected: %s %s\n" % (platform.python_implementation(), platform.python_version()))
sys.exit(1)
