"""The capture's format: what ``capture(question)`` writes into ``<capture_dir>/<question>/`` and the
scoring process reads (rubric/artifacts.py, rubric/contamination.py, rubric/inputs.py).

Constants only, importing nothing: the grader imports this module from the package, the kernel
runs it as source with the rest of the runtime.
"""

# The files of a question.
CALLS_FILE = "calls.json"        # {META: {...}, CALLS: [every recorded call of the question or its model's lineage]}
MODEL_FILE = "model.keras"       # the question's model, saved by Keras
GRAPH_EXPORT = "saved_model"     # its traced computation (a TensorFlow SavedModel), when it runs notebook code
INPUTS_FILE = "inputs.npz"       # the arrays below, uncompressed

# calls.json: its two parts, and the keys of META.
META = "meta"
CALLS = "calls"
QUESTION = "question"
ERRORS = "errors"                # what failed while capturing (model.save, model.export, the capture itself)
MODEL_FOUND_BY = "model_found_by"    # how the question's model was chosen: "given", "exercise", "trained", ...
MODEL_UID = "model_uid"          # the recorder's id of that model (a call's "model"), None without one
MODEL_SAVED = "model_saved"      # whether MODEL_FILE was written
NOTEBOOK_CODE = "notebook_code"  # what in the model is Python written in the notebook
GRAPH_EXPORTED = "graph_exported"    # whether GRAPH_EXPORT was written

# inputs.npz: the arrays, each present when known.
EVALUATE_X = "evaluate_x"        # the model's last test-sized input to evaluate ...
PREDICT_X = "predict_x"          # ... and to predict
FIT_HEAD_X = "fit_head_x"        # the first rows of its last training input
PROJECTION_PREFIX = "projection_"    # + a training call's PROJECTION: its rows through a fixed random projection
SPECTRUM_PREFIX = "spectrum_"        # + the same key: their spectra, projected

# A training call's fingerprints, in calls.json.
ROW_HASHES = "row_hashes"        # a hash of each row it trained on
PROJECTION = "projection"        # the key of its rows' arrays in inputs.npz
