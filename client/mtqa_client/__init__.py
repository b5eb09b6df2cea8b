"""mtqa-client: a gRPC SDK for mtqa inspection models served by NVIDIA Triton.

`InspectionClient` (sync) and `AsyncInspectionClient` (asyncio) send images to the `mtqa_inspect`
ensemble and return typed results; `infer_tensor` calls the raw `mtqa_net`. Errors are typed
(`InspectionError` and subclasses). Depends on numpy, tritonclient[grpc] and pillow only.
"""

from mtqa_client.aio import AsyncInspectionClient
from mtqa_client.batch import BatchError
from mtqa_client.client import InspectionClient
from mtqa_client.errors import (
    AuthenticationError,
    InferenceTimeoutError,
    InspectionError,
    InvalidInputError,
    ModelContractError,
    ModelNotReadyError,
    PermissionDeniedError,
    ServerOverloadedError,
    ServerUnavailableError,
)
from mtqa_client.results import (
    DefectScore,
    Grade,
    InspectionResult,
    ItemError,
    Region,
    TensorResult,
    Timings,
)
from mtqa_client.retry import RetryPolicy
from mtqa_client.spec import ModelSpec
from mtqa_client.transport import TlsConfig

__version__ = "0.1.0"

__all__ = [
    "AsyncInspectionClient",
    "AuthenticationError",
    "BatchError",
    "DefectScore",
    "Grade",
    "InferenceTimeoutError",
    "InspectionClient",
    "InspectionError",
    "InspectionResult",
    "InvalidInputError",
    "ItemError",
    "ModelContractError",
    "ModelNotReadyError",
    "ModelSpec",
    "PermissionDeniedError",
    "Region",
    "RetryPolicy",
    "ServerOverloadedError",
    "ServerUnavailableError",
    "TensorResult",
    "Timings",
    "TlsConfig",
    "__version__",
]
