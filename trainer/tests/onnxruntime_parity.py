"""Runs an exported model with onnxruntime and compares its outputs with tract's.

Usage: onnxruntime_parity.py MODEL CASE_JSON, where CASE_JSON holds rows, columns, the
features (row-major, null for a missing value) and tract's outputs. Prints the largest
absolute difference; exits 1 when it is above the case's tolerance times the outputs' scale
(their largest magnitude), as the trainer's own export check measures it.
"""

import json
import sys

import numpy as np
import onnxruntime as ort


def main() -> None:
    model, case_path = sys.argv[1], sys.argv[2]
    with open(case_path, encoding="utf-8") as f:
        case = json.load(f)
    features = np.asarray(case["features"], dtype=np.float32).reshape(case["rows"], case["columns"])
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    (output,) = session.run(None, {session.get_inputs()[0].name: features})
    expected = np.asarray(case["expected"], dtype=np.float32)
    difference = float(np.max(np.abs(output.reshape(-1) - expected)))
    scale = max(float(np.max(np.abs(expected))), float(np.finfo(np.float32).tiny))
    print(difference)
    sys.exit(0 if difference <= case["tolerance"] * scale else 1)


if __name__ == "__main__":
    main()
