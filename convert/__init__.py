"""wbc-edge conversion stage: TFLite / ONNX / OpenVINO artifacts with a parity gate."""
