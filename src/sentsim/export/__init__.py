"""Export: model folders → ONNX files (fp32 and int8) that ONNX Runtime runs without torch."""
