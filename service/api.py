"""The LitAPIs, POST /predict and POST /explain: thin shells over `textcnn.Classifier`.

`BundleAPI` holds what both share (the bundle, the worker's torch threads, the loop, `setup`);
each route keeps only its hooks. LitServe calls, in each inference process: `setup` once, then
for every batch of up to `max_batch_size` requests `decode_request` (each) -> `batch` ->
`predict` -> `unbatch` -> `encode_response` (each). A request to /predict may carry several
texts, so a batch of requests is a ragged list of token-id sequences: `batch` flattens them,
`predict` runs them, and `unbatch` cuts the logits back at the request boundaries, in order.
"""

# No `from __future__ import annotations` here: LitServe reads the annotations of decode_request
# and encode_response (inspect.signature) to type the FastAPI route, and needs the classes.
import itertools
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import litserve as ls
import torch

from service import metrics
from service.loop import make_loop
from service.schemas import (
    ExplainRequest,
    ExplainResponse,
    Explanation,
    LabelScore,
    PredictRequest,
    PredictResponse,
    TextPrediction,
)
from textcnn import Batch, Classifier, explain_text
from textcnn.errors import BundleError

ExplainItem = tuple[list[str], int, float | None]  # one request to /explain: texts, top, threshold


@dataclass(frozen=True)
class FlatBatch:
    """Every sequence of a batch of requests, cut into padded chunks of similar length."""

    chunks: list[tuple[list[int], Batch]]  # (indices among all sequences, their padded rows) each
    sizes: list[int]  # sequences per request, in request order
    coverages: list[float]  # each sequence's share of known tokens (0: unread)


class BundleAPI(ls.LitAPI):
    """One route answered from the bundle at `model_path`: each inference worker loads its own copy.

    Always a batched loop (service/loop.py), even for batches of one, so the hooks always run as
    batch -> predict -> unbatch (LitAPI warns when batch/unbatch meet max_batch_size=1).
    """

    def __init__(
        self,
        model_path: str | Path,
        api_path: str,
        max_batch_size: int,
        batch_timeout: float,
        threads: int | None = None,
        loop: str = "blocking",
    ):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "The LitServer has both batch and unbatch", UserWarning)
            super().__init__(
                max_batch_size=max_batch_size,
                batch_timeout=batch_timeout,
                api_path=api_path,
                loop=make_loop(loop),
            )
        self.model_path = str(model_path)
        self.threads = threads

    def setup(self, device: str) -> None:
        if self.threads is not None and device == "cpu":
            torch.set_num_threads(self.threads)  # this worker process only
        self.classifier = Classifier.load(self.model_path, device=device)
        self.model_id = self.classifier.card.id


class TextCNNAPI(BundleAPI):
    """POST /predict: requests batched together, their texts cut into chunks of similar length."""

    def __init__(
        self,
        model_path: str | Path,
        max_batch_size: int = 32,
        batch_timeout: float = 0.0,
        max_batch_tokens: int = 32768,
        threads: int | None = None,
        loop: str = "blocking",
    ):
        super().__init__(model_path, "/predict", max_batch_size, batch_timeout, threads=threads, loop=loop)
        self.max_batch_tokens = max_batch_tokens

    def decode_request(self, request: PredictRequest, context: dict) -> list[tuple[list[int], float]]:
        # `request` was validated by FastAPI in the HTTP server (see service.schemas).
        context["top_k"] = request.top_k
        context["probabilities"] = request.probabilities
        context["threshold"] = request.threshold  # None unless multi-label (the schema refuses it otherwise)
        encoder = self.classifier.encoder
        encoded = []
        for text in request.all_texts:
            ids = encoder.encode(text)
            encoded.append((ids, encoder.coverage(text, ids)))  # each text's ids and its coverage
        return encoded

    def batch(self, inputs: list[list[tuple[list[int], float]]]) -> FlatBatch:
        sequences = [ids for request in inputs for ids, _ in request]
        coverages = [share for request in inputs for _, share in request]
        # max_rows: LitServe's max_batch_size already bounds the requests
        chunks = list(self.classifier.batches(sequences, len(sequences), self.max_batch_tokens))
        metrics.observe_batch(requests=len(inputs), texts=len(sequences))
        metrics.observe_coverage(coverages)
        return FlatBatch(chunks, [len(request) for request in inputs], coverages)

    def predict(self, batch: FlatBatch) -> tuple[torch.Tensor, list[int], list[float]]:
        start = time.perf_counter()
        logits = torch.empty(sum(batch.sizes), self.classifier.num_classes)  # (N, C)
        with torch.inference_mode():
            for rows, chunk in batch.chunks:
                logits[rows] = self.classifier.logits_for_batch(chunk)  # (rows, C)
        metrics.observe_forward(time.perf_counter() - start)
        return logits, batch.sizes, batch.coverages

    def unbatch(
        self, output: tuple[torch.Tensor, list[int], list[float]]
    ) -> list[tuple[torch.Tensor, list[float]]]:
        logits, sizes, coverages = output
        ends = list(itertools.accumulate(sizes))
        # one (n_texts, C) block per request, in order, with its texts' coverages
        return [
            (block, coverages[end - size : end])
            for block, size, end in zip(torch.split(logits, sizes), sizes, ends, strict=True)
        ]

    def encode_response(self, output: tuple[torch.Tensor, list[float]], context: dict) -> PredictResponse:
        logits, coverages = output
        top_k, with_probabilities = context.get("top_k"), context.get("probabilities", False)
        threshold = context.get("threshold")
        predictions = []
        for prediction in self.classifier.predictions_from_logits(logits, coverages, threshold):
            ranked = None
            if top_k and not prediction.unread:
                # sorted() is stable: equal probabilities keep the labels' order
                order = sorted(prediction.probabilities.items(), key=lambda item: -item[1])
                ranked = [LabelScore(label=label, score=score) for label, score in order[:top_k]]
            # Multi-label: `labels` is set (null when unread), at most top_k of them; single-label: left
            # unset, so the answer has no such key (schemas.MultiLabelAnswer).
            given = {}
            if prediction.multi_label:
                pairs = prediction.labels if prediction.labels is None else prediction.labels[:top_k]
                given["labels"] = None if pairs is None else [LabelScore(label=n, score=p) for n, p in pairs]
            predictions.append(
                TextPrediction(
                    label=prediction.label,
                    score=prediction.score,
                    probabilities=prediction.probabilities if with_probabilities else None,
                    top_k=ranked,
                    coverage=prediction.coverage,
                    unread=prediction.unread,
                    **given,
                )
            )
        return PredictResponse(model=self.model_id, predictions=predictions)


class ExplainAPI(BundleAPI):
    """POST /explain: `textcnn.explain_text` for each text, in its own inference worker(s).

    One request per batch (max_batch_size=1): an explanation is computed text by text, so batching
    requests saves nothing, and LitServe answers a whole batch with the error of any request in it.
    The loop is still the batched one (service/loop.py), so an idle worker does not poll its queue.
    """

    def __init__(self, model_path: str | Path, threads: int | None = None, loop: str = "blocking"):
        super().__init__(
            model_path, "/explain", max_batch_size=1, batch_timeout=0.0, threads=threads, loop=loop
        )

    def decode_request(self, request: ExplainRequest, context: dict) -> ExplainItem:
        return request.all_texts, request.top, request.threshold

    def batch(self, inputs: list[ExplainItem]) -> list[ExplainItem]:
        return inputs

    def predict(self, batch: list[ExplainItem]) -> list[list[dict]]:
        start = time.perf_counter()
        answers = [
            [explain_text(self.classifier, text, top=top, threshold=threshold) for text in texts]
            for texts, top, threshold in batch
        ]
        metrics.observe_coverage([a["coverage"] for answer in answers for a in answer], route="explain")
        metrics.observe_explain(
            texts=sum(len(texts) for texts, _, _ in batch), seconds=time.perf_counter() - start
        )
        return answers

    def unbatch(self, output: list[list[dict]]) -> list[list[dict]]:
        return output

    def encode_response(self, explanations: list[dict], context: dict) -> ExplainResponse:
        return ExplainResponse(
            model=self.model_id,
            explanations=[Explanation.model_validate(explanation) for explanation in explanations],
        )


def check_bundle(path: str | Path) -> Classifier:
    """Load the bundle on the CPU in the main process, so a broken one fails before any worker starts."""
    if not Path(path).exists():
        raise BundleError(f"{path}: no model bundle here (set --model or TEXTCNN_MODEL)")
    return Classifier.load(path, device="cpu")
