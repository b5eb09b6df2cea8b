"""Python-backend model sources copied verbatim into Triton version directories by the builder.

Each file here must stay self-contained (numpy, pillow, scipy, onnxruntime and Triton's
`triton_python_backend_utils`), because the same repository runs in the NGC container.
"""
