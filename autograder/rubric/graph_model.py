"""Models whose Python lives in the notebook (a keras.Model subclass, custom or Lambda layers), graded from
the computation Keras traced in the student's kernel and exported as a TensorFlow SavedModel.

The scoring process never runs student code.  Before anything is loaded, every operation of the SavedModel
(its graph and each function of its library) is checked against a list of pure tensor operations: a model
that reads or writes files, prints, or calls Python is refused with a French reason.  What remains loads as
graph operations only.  The structure the rubric reads (layers as applied, their activations, the output) is
read from the serving function, each Keras layer's operations being named under its name scope.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np


SIGNATURE = "serving_default"
CALLS = {"StatefulPartitionedCall", "PartitionedCall"}
# Pure tensor operations, and those Keras' export puts in its variable save and restore functions, which
# grading never calls (restoring reads the SavedModel's own variables).
ALLOWED = CALLS | {
    "Placeholder", "Const", "Identity", "IdentityN", "NoOp", "ReadVariableOp", "VarHandleOp", "VarIsInitializedOp",
    "AssignVariableOp", "DisableCopyOnRead", "RestoreV2", "SaveV2", "MergeV2Checkpoints", "ShardedFilename",
    "StringJoin", "StaticRegexFullMatch", "Select", "SelectV2", "Pack", "Unpack",
    "MatMul", "BatchMatMulV2", "BatchMatMulV3", "Einsum", "BiasAdd", "AddV2", "Add", "AddN", "Sub", "Mul",
    "RealDiv", "Div", "DivNoNan", "FloorDiv", "Neg", "Reciprocal", "Rsqrt", "Sqrt", "Square", "SquaredDifference",
    "Pow", "Exp", "Log", "Log1p", "Abs", "Sign", "Maximum", "Minimum", "ClipByValue", "Erf", "Round", "Floor",
    "Relu", "Relu6", "Elu", "Selu", "LeakyRelu", "Sigmoid", "Tanh", "Softmax", "LogSoftmax", "Softplus",
    "Softsign", "FusedBatchNormV3", "Cast", "Reshape", "Shape", "Size", "Rank", "StridedSlice", "Slice",
    "ConcatV2", "Transpose", "Squeeze", "ExpandDims", "Tile", "Fill", "ZerosLike", "OnesLike", "Range",
    "GatherV2", "Mean", "Sum", "Max", "Min", "Prod", "ArgMax", "Greater", "GreaterEqual", "Less", "LessEqual",
    "Equal", "NotEqual", "LogicalAnd", "LogicalOr", "LogicalNot", "BroadcastTo", "BroadcastArgs", "EnsureShape",
}
ACTIVATIONS = {"Relu": "relu", "Relu6": "relu6", "Elu": "elu", "Selu": "selu", "LeakyRelu": "leaky_relu",
               "Sigmoid": "sigmoid", "Tanh": "tanh", "Softmax": "softmax", "LogSoftmax": "log_softmax",
               "Softplus": "softplus", "Softsign": "softsign"}
THROUGH = {"ReadVariableOp", "Cast", "Identity", "AddV2"}    # followed back to the variable they read
PLUMBING = {"Const", "Identity", "IdentityN", "NoOp", "ReadVariableOp", "Cast", "Placeholder"}


class UnsafeModel(Exception):
    """The SavedModel holds operations grading does not run; the message is French."""


def _saved_model(path: Path):
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((path / "saved_model.pb").read_bytes())
    if len(proto.meta_graphs) != 1:
        raise UnsafeModel("le modèle exporté n'a pas la forme attendue")
    return proto.meta_graphs[0]


def check_operations(meta_graph) -> None:
    used = {node.op for node in meta_graph.graph_def.node}
    for function in meta_graph.graph_def.library.function:
        used |= {node.op for node in function.node_def}
    refused = sorted(used - ALLOWED)
    if refused:
        raise UnsafeModel("le modèle contient des opérations que le correcteur n'exécute pas par sécurité ("
                          + ", ".join(refused) + ")")


def _operations(meta_graph) -> Iterator[tuple[str, str, list]]:
    """The serving function's operations in the order they were traced, calls expanded: (type, name, inputs
    resolved to ("var", shape) for the variables they read, else None)."""
    graph, library = meta_graph.graph_def, {f.signature.name: f for f in meta_graph.graph_def.library.function}
    top = {node.name: node for node in graph.node}
    inputs = {t.name.split(":")[0] for t in meta_graph.signature_def[SIGNATURE].inputs.values()}
    [call] = [n for n in graph.node if n.op in CALLS and any(i.split(":")[0] in inputs for i in n.input)]

    def top_source(name):
        node = top.get(name.split(":")[0].lstrip("^"))
        return ("var", [d.size for d in node.attr["shape"].shape.dim]) if node is not None and node.op == "VarHandleOp" \
            else None

    def expand(function, bound, depth=0):
        local = {node.name: node for node in function.node_def}

        def source(name, hops=0):
            name = name.split(":")[0].lstrip("^")
            if name in bound:
                return bound[name]
            node = local.get(name)
            if node is None or node.op not in THROUGH or hops > 8 or not node.input:
                return None
            return source(node.input[0], hops + 1)

        for node in function.node_def:
            if node.op in CALLS and depth < 20:
                callee = library[node.attr["f"].func.name]
                yield from expand(callee, {a.name: source(i) for a, i in zip(callee.signature.input_arg, node.input)},
                                  depth + 1)
            else:
                yield node.op, node.name, [source(i) for i in node.input]

    callee = library[call.attr["f"].func.name]
    yield from expand(callee, {a.name: top_source(i) for a, i in zip(callee.signature.input_arg, call.input)})


def _scope(name: str) -> str:
    """The Keras layer an operation belongs to: its name scope (BatchNormalization's math sits in batchnorm/)."""
    head, _, _ = name.partition("/batchnorm/")
    return head if head != name else name.rpartition("/")[0]


@dataclass(frozen=True)
class GraphLayer:
    """A layer as read from the graph (artifacts.Layer's fields)."""
    class_name: str
    units: int | None = None
    activation: str | None = None
    features: int | None = None


def describe(meta_graph) -> tuple[list[GraphLayer], int | None]:
    """The layers as the serving function applies them, each layer's operations grouped by its name scope,
    and the number of outputs."""
    scopes: dict[str, list[tuple[str, list]]] = {}
    for op, name, sources in _operations(meta_graph):
        if op not in PLUMBING:
            scopes.setdefault(_scope(name), []).append((op, sources))
    layers = []
    for ops in scopes.values():
        types = [op for op, _ in ops]
        variable = lambda op: next((s[1] for o, srcs in ops if o == op for s in srcs if s and s[0] == "var"), None)  # noqa: E731
        activation = next((ACTIVATIONS[t] for t in types if t in ACTIVATIONS), None)
        if "Rsqrt" in types or "FusedBatchNormV3" in types:
            shape = variable("Rsqrt") or variable("AddV2") or variable("Mul") or variable("FusedBatchNormV3")
            layers.append(GraphLayer("BatchNormalization", features=shape[-1] if shape else None))
        elif "MatMul" in types:
            kernel = variable("MatMul")
            layers.append(GraphLayer("Dense", kernel[-1] if kernel else None, activation or "linear",
                                kernel[0] if kernel else None))
        elif activation and set(types) <= set(ACTIVATIONS) | {"Mul", "Maximum", "Minimum"}:
            layers.append(GraphLayer("Softmax" if activation == "softmax" else "Activation", None, activation))
        elif set(types) <= {"Reshape", "Shape", "StridedSlice", "Pack", "ExpandDims", "Squeeze"}:
            layers.append(GraphLayer("Reshape"))
        else:
            layers.append(GraphLayer("+".join(dict.fromkeys(types)), activation=activation))
    outputs = list(meta_graph.signature_def[SIGNATURE].outputs.values())
    dims = [d.size for d in outputs[0].tensor_shape.dim] if len(outputs) == 1 else []
    return layers, dims[-1] if dims and dims[-1] > 0 else None


@dataclass
class GraphModel:
    """The exported computation, called like a Keras model's predict."""
    loaded: object
    function: object
    dtype: object
    key: str

    def predict(self, x, batch_size: int = 1000, verbose: int = 0) -> np.ndarray:
        import tensorflow as tf

        parts = [self.function(**{self.key: tf.constant(np.asarray(x[i:i + batch_size]), dtype=self.dtype)})
                 for i in range(0, len(x), batch_size)]
        return np.concatenate([np.asarray(next(iter(p.values()))) for p in parts])


def load_graph_model(path: Path) -> tuple[tuple[list[GraphLayer], int | None], GraphModel]:
    """Structure and callable of an exported model, or UnsafeModel (French) before anything is loaded."""
    import tensorflow as tf

    meta_graph = _saved_model(path)
    check_operations(meta_graph)
    structure = describe(meta_graph)
    loaded = tf.saved_model.load(str(path))
    signature = loaded.signatures[SIGNATURE]
    [(key, spec)] = signature.structured_input_signature[1].items()
    return structure, GraphModel(loaded, signature, spec.dtype, key)
