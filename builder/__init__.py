"""mtqa_builder: checkpoint -> ONNX -> explicit precision -> accuracy gate -> TensorRT -> Triton repository."""
