"""mtqa_builder: checkpoint -> ONNX -> precision -> gate -> TensorRT -> Triton repository."""
