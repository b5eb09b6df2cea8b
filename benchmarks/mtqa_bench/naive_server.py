"""The server a user would write instead of Triton: FastAPI + PyTorch eager, one image per request.

`python -m mtqa_bench.naive_server --checkpoint runs/tiny --port 8100` serves `POST /inspect`
(body: encoded image bytes) on loopback with uvicorn and answers JSON with the same content as the
`mtqa_inspect` ensemble: presence probabilities and decisions, grade, bit-packed masks. It loads
the same checkpoint the repository was built from and runs the model on every request alone.
"""

from __future__ import annotations

import argparse
import base64
from pathlib import Path
from typing import Any

import numpy as np
import torch
import uvicorn
from fastapi import FastAPI, HTTPException, Request  # module level: FastAPI resolves annotations

from mtqa.checkpoint import load_checkpoint
from mtqa.data.decode import decode_image
from mtqa.data.preprocess import preprocess_image


def create_app(checkpoint: Path) -> FastAPI:
    """Build the FastAPI app around a loaded checkpoint."""
    ckpt = load_checkpoint(checkpoint)
    model = ckpt.model
    presence_t = np.array([ckpt.thresholds["presence"][c] for c in ckpt.classes], np.float32)
    seg_t = np.array([ckpt.thresholds["segmentation"][c] for c in ckpt.classes], np.float32)
    app = FastAPI(title="naive mtqa server")

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/inspect")
    async def inspect(request: Request) -> dict[str, Any]:
        data = await request.body()
        try:
            rgb = decode_image(data, size=ckpt.image_size).rgb
        except Exception as exc:  # any undecodable body is the client's fault
            raise HTTPException(status_code=400, detail=f"cannot decode image: {exc}") from exc
        x = preprocess_image(rgb, ckpt.image_size, ckpt.mean, ckpt.std)
        with torch.inference_mode():
            out = model(torch.from_numpy(x)[None])
        presence = torch.sigmoid(out["presence_logits"])[0].numpy()
        grade = torch.softmax(out["grade_logits"], dim=1)[0].numpy()
        masks = torch.sigmoid(out["seg_logits"])[0].numpy() > seg_t[:, None, None]
        packed = np.packbits(masks.reshape(len(ckpt.classes), -1), axis=1, bitorder="big")
        return {
            "presence_prob": presence.tolist(),
            "presence_decision": (presence > presence_t).tolist(),
            "grade_prob": grade.tolist(),
            "grade": ckpt.grades[int(grade.argmax())],
            "orig_size": list(rgb.shape[:2]),
            "masks_packed": base64.b64encode(packed.tobytes()).decode("ascii"),
        }

    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100)
    args = parser.parse_args(argv)
    uvicorn.run(create_app(args.checkpoint), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
