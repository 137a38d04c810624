"""The JSON the service takes and gives, as pydantic models: they validate, and they are /docs.

A request names one text (`text`) or several (`texts`); the answer is always a list of
predictions in input order, so one shape serves both:

    POST /predict {"text": "a gorgeous , witty , seductive movie ."}
    -> {"model": "mr@93a03903a534", "predictions": [{"label": "positive", "score": 0.93, ...}]}
    POST /explain {"texts": ["...", "..."], "top": 5}
    -> {"model": "mr@93a03903a534", "explanations": [textcnn.inference.explain.explain_text's dict, ...]}

A multi-label model (GET /info's `task`) gives each text the labels whose probability reaches their
threshold: its predictions and explanations carry `labels` (null for an unread text), and a request
may set one `threshold` for every label. A single-label model's answers have no `labels` key, as
before, and it refuses a `threshold` (422).

Validation runs in the HTTP server, before a request is queued for the model: LitServe decodes
a whole batch inside one `try` (litserve/loops/simple_loops.py, BatchedLoop.run_batched_loop),
so an error raised there for one bad request would be the answer to every request batched with
it. The size limits come from the server's settings (`configure_limits`), and the JSON schemas state
them (and "exactly one of text or texts", and "not only whitespace"), so that a request valid by the
schema is one the server takes: tests/test_service_openapi.py checks that with schemathesis.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

from textcnn.errors import ConfigError


class RequestLimits(BaseModel):
    """What one request may hold; set once per server process by `configure_limits`."""

    model_config = ConfigDict(frozen=True)

    max_texts: int = 64
    max_text_chars: int = 5000
    num_classes: int | None = None  # the largest top_k; None: not checked (no model known yet)
    multi_label: bool | None = None  # whether `threshold` is taken; None: not checked (no model known yet)


MAX_TOP = 20  # most n-grams an explanation lists each way (`top` of POST /explain)
# "Not empty or only whitespace" in JSON Schema: a pattern is a search, so one character that is not
# whitespace as str.isspace() counts it. Spelt out, not `\S`: ECMA-262's \s, which JSON Schema
# validators use, leaves out U+001C-U+001F and U+0085, which str.strip() removes (tests check the class).
NOT_BLANK = r"[^\t\n\u000b\f\r\u001c-\u0020\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"

_REQUEST_EXAMPLES = [
    {"text": "a gorgeous , witty , seductive movie ."},
    {
        "texts": ["the plot is thin and the jokes fall flat .", "one of the best performances of the year ."],
        "top_k": 2,
        "probabilities": True,
    },
]
_MULTI_LABEL_EXAMPLE = {"text": "so glad you are here , love you", "threshold": 0.3}
_EXPLAIN_EXAMPLES = [
    {"text": "a gorgeous , witty , seductive movie ."},
    {"texts": ["the plot is thin and the jokes fall flat .", "a warm , funny film ."], "top": 3},
]


def _integral(value: Any) -> Any:
    """5.0 as 5: JSON has one number type, and JSON Schema's "integer" takes 5.0 (strict pydantic does not)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _json_int(minimum: int, maximum: int | None = None) -> Any:
    """int from minimum (to maximum) taking 5.0 as 5; the bounds first, so they are in the JSON schema."""
    return Annotated[int, Field(ge=minimum, le=maximum), BeforeValidator(_integral)]


def _texts_schema(schema: dict[str, Any], limits: RequestLimits) -> None:
    """The limits every text is checked against, and "exactly one of `text` or `texts`", in the schema.

    The `oneOf` says what `_check_request` does: one of the two is given (not null), the other is
    absent or null. Without it a schema-valid `{}` would be refused, and a client generated from the
    schema (or schemathesis) could not tell a valid request from an invalid one.
    """
    properties = schema["properties"]
    _branch(properties["text"], "string").update(
        minLength=1, maxLength=limits.max_text_chars, pattern=NOT_BLANK
    )
    texts = _branch(properties["texts"], "array")
    texts.update(minItems=1, maxItems=limits.max_texts)
    texts["items"].update(minLength=1, maxLength=limits.max_text_chars, pattern=NOT_BLANK)
    if limits.multi_label is False:  # this server's model gives one label per text: only null is taken
        threshold = properties["threshold"]
        threshold.pop("anyOf", None)
        threshold["type"] = "null"
        threshold["description"] += " This server's model is single-label: leave it out (or null)."
    schema["oneOf"] = [
        {"required": ["text"], "properties": {"text": {"type": "string"}, "texts": {"type": "null"}}},
        {"required": ["texts"], "properties": {"texts": {"type": "array"}, "text": {"type": "null"}}},
    ]


def _request_schema(schema: dict[str, Any], model: type[PredictRequest]) -> None:
    """Write the configured limits into the OpenAPI schema, next to the examples."""
    limits = model.limits
    _texts_schema(schema, limits)
    top_k = _branch(schema["properties"]["top_k"], "integer")
    if limits.num_classes is not None:
        top_k["maximum"] = limits.num_classes
    schema["examples"] = _REQUEST_EXAMPLES + ([_MULTI_LABEL_EXAMPLE] if limits.multi_label else [])


def _explain_schema(schema: dict[str, Any], model: type[ExplainRequest]) -> None:
    _texts_schema(schema, model.limits)
    schema["examples"] = _EXPLAIN_EXAMPLES + ([_MULTI_LABEL_EXAMPLE] if model.limits.multi_label else [])


def _branch(prop: dict, json_type: str) -> dict:
    """The `json_type` alternative of an optional field's `anyOf` (pydantic's `X | None`)."""
    return next(option for option in prop.get("anyOf", [prop]) if option.get("type") == json_type)


class TextsRequest(BaseModel):
    """`text` or `texts`, checked against `limits`, and a multi-label model's `threshold`: what
    /predict and /explain take alike."""

    # strict: JSON types are taken as they are ("2" is not an integer, "yes" not a boolean).
    model_config = ConfigDict(extra="forbid", strict=True)

    text: str | None = Field(None, description="One text; give this or `texts`, not both.")
    texts: list[str] | None = Field(
        None, description="Several texts, answered in the same order; give this or `text`."
    )
    threshold: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="Multi-label models only: one threshold for every label, in place of the model's own "
        "(GET /info's `decision`); a text gets each label whose probability reaches it. A single-label "
        "model refuses it (422).",
    )

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
    def _check_request(self) -> TextsRequest:
        if (self.text is None) == (self.texts is None):
            raise ValueError("give exactly one of `text` (one text) or `texts` (a list of texts)")
        if self.threshold is not None and self.limits.multi_label is False:
            raise ValueError(
                "threshold is for a multi-label model; this one gives one label per text (GET /info's task)"
            )
        return self

    @property
    def all_texts(self) -> list[str]:
        return [self.text] if self.text is not None else list(self.texts or [])


class PredictRequest(TextsRequest):
    model_config = ConfigDict(json_schema_extra=_request_schema)

    top_k: _json_int(1) | None = Field(
        None,
        description="Also list the k most probable labels with their probabilities (`top_k`). For a "
        "multi-label model it also caps `labels`: at most k of the labels given, the most probable first.",
    )
    probabilities: bool = Field(False, description="Also give the probability of every label.")

    limits: ClassVar[RequestLimits] = RequestLimits()

    @model_validator(mode="after")
    def _check_top_k(self) -> PredictRequest:
        classes = self.limits.num_classes
        if self.top_k is not None and classes is not None and self.top_k > classes:
            raise ValueError(f"top_k is {self.top_k}, but the model has {classes} labels")
        return self


class ExplainRequest(TextsRequest):
    model_config = ConfigDict(json_schema_extra=_explain_schema)

    top: _json_int(1, MAX_TOP) = Field(
        5, description="How many n-grams to list for the label and against it."
    )

    limits: ClassVar[RequestLimits] = RequestLimits(max_texts=8)


def _check_one_text(text: str, limits: RequestLimits, where: str = "text") -> None:
    if not text.strip():
        raise ValueError(f"{where} is empty or only whitespace")
    if len(text) > limits.max_text_chars:
        raise ValueError(f"{where} has {len(text)} characters; at most {limits.max_text_chars}")


def configure_limits(
    max_texts: int,
    max_text_chars: int,
    num_classes: int | None,
    max_explain_texts: int = 8,
    multi_label: bool | None = None,
) -> RequestLimits:
    """Set the limits every `PredictRequest` and `ExplainRequest` is checked against in this process
    (and its forks), and whether the model takes a `threshold`; returns those of `PredictRequest`."""
    if min(max_texts, max_text_chars, max_explain_texts) < 1 or (num_classes is not None and num_classes < 1):
        raise ConfigError("request limits must be positive")
    PredictRequest.limits = RequestLimits(
        max_texts=max_texts, max_text_chars=max_text_chars, num_classes=num_classes, multi_label=multi_label
    )
    ExplainRequest.limits = RequestLimits(
        max_texts=max_explain_texts,
        max_text_chars=max_text_chars,
        num_classes=num_classes,
        multi_label=multi_label,
    )
    return PredictRequest.limits


class MultiLabelAnswer(BaseModel):
    """An answer whose `labels` is in its JSON only when set: a multi-label model's answers always set
    it (null for an unread text), so a single-label model's keep the shape they had before it."""

    # No return annotation: pydantic would take it for the JSON schema of the answer (`{}` for Any).
    @model_serializer(mode="wrap")
    def _leave_out_unset_labels(self, handler: SerializerFunctionWrapHandler):
        data = handler(self)
        if "labels" not in self.model_fields_set:
            data.pop("labels", None)
        return data


class LabelScore(BaseModel):
    label: str
    score: float = Field(description="Probability of the label.")


class TextPrediction(MultiLabelAnswer):
    label: str | None = Field(
        description="The most probable label; null when the text is unread (no token the model knows). "
        "Multi-label: the first of `labels`, null when no label is given."
    )
    score: float | None = Field(
        description="Its probability; null when the text is unread (or has no label)."
    )
    probabilities: dict[str, float] | None = Field(
        None,
        description="Every label's probability; null unless the request asked for `probabilities`, and for an "
        "unread text. Multi-label: each label's own probability (a sigmoid; they need not sum to 1).",
    )
    top_k: list[LabelScore] | None = Field(
        None,
        description="The k most probable labels, most probable first; null unless asked for (or unread). "
        "Multi-label: given or not.",
    )
    coverage: float = Field(
        description="The share of the text's tokens the model's vocabulary knows, 0 to 1: far below what it "
        "was trained on, the prediction rests on few words."
    )
    unread: bool = Field(
        description="True when no word of the text is known to the model (another script or language; known "
        "punctuation alone does not count): it has no label, since the model's output would be its biases alone."
    )
    labels: list[LabelScore] | None = Field(
        None,
        description="Multi-label models only (absent for a single-label one): every label whose probability "
        "reaches its threshold (the model's, or the request's `threshold`), most probable first, at most "
        "`top_k` of them; empty when none does (unless the model gives every text its most probable label: "
        "GET /info's `decision.at_least_one`); null when the text is unread.",
    )


class PredictResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "model": "mr@93a03903a534",
                    "predictions": [
                        {
                            "label": "positive",
                            "score": 0.93,
                            "probabilities": None,
                            "top_k": None,
                            "coverage": 1.0,
                            "unread": False,
                        },
                        {
                            "label": None,
                            "score": None,
                            "probabilities": None,
                            "top_k": None,
                            "coverage": 0.0,
                            "unread": True,
                        },
                    ],
                },
                {
                    "model": "emotions@5d41402abc4b",
                    "predictions": [
                        {
                            "label": "joy",
                            "score": 0.91,
                            "probabilities": None,
                            "top_k": None,
                            "coverage": 1.0,
                            "unread": False,
                            "labels": [{"label": "joy", "score": 0.91}, {"label": "love", "score": 0.64}],
                        }
                    ],
                },
            ]
        }
    )

    model: str = Field(
        description="Which model answered: bundle folder name @ first 12 hex of its weights' sha256."
    )
    predictions: list[TextPrediction] = Field(description="One per input text, in input order.")


class NGram(BaseModel):
    """One filter's winning window (or a linear member's n-gram), and what it added to the label's logit."""

    start: int = Field(description="First token of the window (index into `tokens`).")
    end: int = Field(description="One past its last token: the window is tokens[start:end].")
    ngram: str = Field(
        description="The window's tokens, joined by spaces; for a character n-gram (`characters`), its characters, "
        "a space marking a token's edge."
    )
    characters: bool = Field(
        False,
        description="A character n-gram of a char-lr member: tokens[start:end] are the tokens holding it, its "
        "contribution split over them by how often each holds it.",
    )
    width: int = Field(description="The filter width (n): tokens, or characters for a character n-gram.")
    filter: int = Field(
        description="The feature map: index of the filter among all filters; for a linear member, the n-gram's "
        "feature index."
    )
    slot: int = Field(
        description="Which pooled value of the feature map: the slot of k-max, the region of chunk-max, local-max or "
        "local-avg; 0 for the poolings with one value per map (max, avg, padded-avg, logsumexp)."
    )
    activation: float = Field(
        description="The pooled value of the feature map at this window; for a linear member, the n-gram's "
        "feature value (1 for NBSVM's binarized features, its normalized TF-IDF for tfidf-lr)."
    )
    weight: float = Field(description="The output layer's weight of that value for the label.")
    contribution: float = Field(
        description="What the window added to the label's logit: its `filter_bias` plus its `token_parts`."
    )
    filter_bias: float = Field(description="The filter bias's share of the contribution.")
    token_parts: list[float] = Field(description="The rest of it, split over the window's tokens.")
    part: Literal["max", "avg"] | None = Field(
        None, description="With max+avg pooling, which half of the pooled vector; else null."
    )
    member: int | None = Field(
        None,
        description="For an ensemble, the member whose filter (or n-gram) this is; contribution, filter_bias "
        "and token_parts are then its share of the members' weighted mean logit (times the member's weight). "
        "Else null.",
    )
    kind: str | None = Field(
        None,
        description="For an ensemble, the member's kind: cnn, or a linear member's (nbsvm, tfidf-lr, char-lr).",
    )


class MemberVerdict(BaseModel):
    """What one member of an ensemble said about the text, alone, and its part in the combined logit."""

    member: int = Field(description="The member's index (CNN members in group order, then the linear one).")
    kind: str = Field(description="cnn, nbsvm or tfidf-lr.")
    pooling: str | None = Field(description="A CNN member's pooling; null for a linear member.")
    weight: float = Field(description="Its weight in the combination (the weights sum to 1).")
    label: str = Field(description="The label it predicts alone.")
    probabilities: dict[str, float] = Field(description="Its own probabilities.")
    logit: float = Field(description="Its own logit of the explained label.")
    token_parts: list[float] = Field(
        description="Its weighted part of each token's part (the members' token_parts add up to the text's)."
    )


class LabelExplanation(BaseModel):
    """A multi-label model's explanation of one label it gives: that label's logit, split as the top level's."""

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    label: str
    score: float = Field(description="Its probability (its own sigmoid).")
    logit: float = Field(description="Its logit: the sum of the parts, the biases and the residual.")
    output_bias: float = Field(description="The output layer's bias for the label.")
    filter_bias: float = Field(description="What the filters' own biases add to the logit.")
    token_parts: list[float] = Field(
        description="Each token's part in the logit, one per token; negative: against the label."
    )
    residual: float = Field(description="The part of the logit the token parts do not account for.")
    for_: list[NGram] = Field(alias="for", description="The n-grams that pushed hardest for the label.")
    against: list[NGram] = Field(description="The n-grams that pushed hardest against it.")


class Explanation(MultiLabelAnswer):
    """What `textcnn.inference.explain.explain_text` returns for one text."""

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    text: str
    tokens: list[str] = Field(description="The text as the model reads it.")
    spans: list[list[int]] = Field(
        description="Where each token stands in `text`: [start, end) as Unicode code-point offsets (not UTF-16 "
        "units), so text[start:end] is its original spelling; [0, 0] for the `<unk>` of a text with no token."
    )
    known: list[bool] = Field(description="For each token, whether the model's vocabulary knows it.")
    coverage: float = Field(description="The share of the tokens the vocabulary knows, 0 to 1.")
    unread: bool = Field(
        description="True when no word is known (punctuation alone does not count): the text has no label and nothing "
        "is split (the numbers are null)."
    )
    label: str | None = Field(
        description="The most probable label: the one explained; null when unread. Multi-label: the first of "
        "`labels` (null when none is given), while the top-level split is still the most probable label's."
    )
    probabilities: dict[str, float] | None = Field(description="Every label's probability; null when unread.")
    logit: float | None = Field(
        description="The label's logit: the sum of the parts, the biases and the residual; null when unread."
    )
    output_bias: float | None = Field(description="The output layer's bias for the label; null when unread.")
    filter_bias: float | None = Field(
        description="What the filters' own biases add to the logit; null when unread."
    )
    token_parts: list[float] = Field(
        description="Each token's part in the logit, one per token; negative: against the label (0 when unread)."
    )
    residual: float | None = Field(
        description="The part of the logit the token parts do not account for; null when unread."
    )
    exact: bool = Field(description="Whether parts, biases and residual sum to the logit exactly.")
    attribution: str = Field(description="How the logit was split over the tokens.")
    for_: list[NGram] = Field(alias="for", description="The n-grams that pushed hardest for the label.")
    against: list[NGram] = Field(description="The n-grams that pushed hardest against it.")
    members: list[MemberVerdict] | None = Field(
        None, description="For an ensemble, what each member said and its part; null for a single model."
    )
    labels: list[LabelExplanation] | None = Field(
        None,
        description="Multi-label models only (absent for a single-label one): one split per label given (its "
        "threshold, or the request's `threshold`), most probable first; null when the text is unread.",
    )


class ExplainResponse(BaseModel):
    model: str = Field(
        description="Which model answered: bundle folder name @ first 12 hex of its weights' sha256."
    )
    explanations: list[Explanation] = Field(description="One per input text, in input order.")


class HealthResponse(BaseModel):
    status: Literal["ok", "not ready"] = Field(
        description="ok: every inference worker has loaded the model; not ready: some are still loading."
    )
    model: str = Field(description="The model served: bundle folder name @ first 12 hex of its sha256.")
