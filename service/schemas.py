"""The JSON the service takes and gives, as pydantic models: they validate, and they are /docs.

A request names one text (`text`) or several (`texts`); the answer is always a list of
predictions in input order, so one shape serves both:

    POST /predict {"text": "a gorgeous , witty , seductive movie ."}
    -> {"model": "mr@93a03903a534", "predictions": [{"label": "positive", "score": 0.93, ...}]}

Validation runs in the HTTP server, before a request is queued for the model: LitServe decodes
a whole batch inside one `try` (litserve/loops/simple_loops.py, BatchedLoop.run_batched_loop),
so an error raised there for one bad request would be the answer to every request batched with
it. The size limits come from the server's settings (`configure_limits`).
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from textcnn.errors import ConfigError


class RequestLimits(BaseModel):
    """What one request may hold; set once per server process by `configure_limits`."""

    model_config = ConfigDict(frozen=True)

    max_texts: int = 64
    max_text_chars: int = 5000
    num_classes: int | None = None  # the largest top_k; None: not checked (no model known yet)


_REQUEST_EXAMPLES = [
    {"text": "a gorgeous , witty , seductive movie ."},
    {
        "texts": ["the plot is thin and the jokes fall flat .", "one of the best performances of the year ."],
        "top_k": 2,
        "probabilities": True,
    },
]


def _request_schema(schema: dict[str, Any], model: type[PredictRequest]) -> None:
    """Write the configured limits into the OpenAPI schema, next to the examples."""
    limits = model.limits
    properties = schema["properties"]
    _branch(properties["text"], "string").update(minLength=1, maxLength=limits.max_text_chars)
    texts = _branch(properties["texts"], "array")
    texts.update(minItems=1, maxItems=limits.max_texts)
    texts["items"].update(minLength=1, maxLength=limits.max_text_chars)
    top_k = _branch(properties["top_k"], "integer")
    if limits.num_classes is not None:
        top_k["maximum"] = limits.num_classes
    schema["examples"] = _REQUEST_EXAMPLES


def _branch(prop: dict, json_type: str) -> dict:
    """The `json_type` alternative of an optional field's `anyOf` (pydantic's `X | None`)."""
    return next(option for option in prop.get("anyOf", [prop]) if option.get("type") == json_type)


class PredictRequest(BaseModel):
    # strict: JSON types are taken as they are ("2" is not an integer, "yes" not a boolean).
    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra=_request_schema)

    text: str | None = Field(None, description="One text to label; give this or `texts`, not both.")
    texts: list[str] | None = Field(
        None, description="Several texts to label, answered in the same order; give this or `text`."
    )
    top_k: int | None = Field(
        None, ge=1, description="Also list the k most probable labels with their probabilities."
    )
    probabilities: bool = Field(False, description="Also give the probability of every label.")

    limits: ClassVar[RequestLimits] = RequestLimits()

    @field_validator("text")
    @classmethod
    def _check_text(cls, text: str | None) -> str | None:
        if text is not None:
            _check_one_text(text, cls.limits)
        return text

    @field_validator("texts")
    @classmethod
    def _check_texts(cls, texts: list[str] | None) -> list[str] | None:
        if texts is None:
            return texts
        if not texts:
            raise ValueError("texts is empty; give at least one text")
        if len(texts) > cls.limits.max_texts:
            raise ValueError(f"{len(texts)} texts in one request; at most {cls.limits.max_texts}")
        for i, text in enumerate(texts):
            _check_one_text(text, cls.limits, f"texts[{i}]")
        return texts

    @model_validator(mode="after")
    def _check_request(self) -> PredictRequest:
        if (self.text is None) == (self.texts is None):
            raise ValueError("give exactly one of `text` (one text) or `texts` (a list of texts)")
        classes = self.limits.num_classes
        if self.top_k is not None and classes is not None and self.top_k > classes:
            raise ValueError(f"top_k is {self.top_k}, but the model has {classes} labels")
        return self

    @property
    def all_texts(self) -> list[str]:
        return [self.text] if self.text is not None else list(self.texts or [])


def _check_one_text(text: str, limits: RequestLimits, where: str = "text") -> None:
    if not text.strip():
        raise ValueError(f"{where} is empty or only whitespace")
    if len(text) > limits.max_text_chars:
        raise ValueError(f"{where} has {len(text)} characters; at most {limits.max_text_chars}")


def configure_limits(max_texts: int, max_text_chars: int, num_classes: int | None) -> RequestLimits:
    """Set the limits every `PredictRequest` is checked against in this process (and its forks)."""
    if max_texts < 1 or max_text_chars < 1 or (num_classes is not None and num_classes < 1):
        raise ConfigError("request limits must be positive")
    PredictRequest.limits = RequestLimits(
        max_texts=max_texts, max_text_chars=max_text_chars, num_classes=num_classes
    )
    return PredictRequest.limits


class LabelScore(BaseModel):
    label: str
    score: float = Field(description="Probability of the label.")


class TextPrediction(BaseModel):
    label: str = Field(description="The most probable label.")
    score: float = Field(description="Its probability.")
    probabilities: dict[str, float] | None = Field(
        None, description="Every label's probability; null unless the request asked for `probabilities`."
    )
    top_k: list[LabelScore] | None = Field(
        None, description="The k most probable labels, most probable first; null unless asked for."
    )


class PredictResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "model": "mr@93a03903a534",
                    "predictions": [
                        {"label": "positive", "score": 0.93, "probabilities": None, "top_k": None}
                    ],
                }
            ]
        }
    )

    model: str = Field(
        description="Which model answered: bundle folder name @ first 12 hex of its weights' sha256."
    )
    predictions: list[TextPrediction] = Field(description="One per input text, in input order.")
