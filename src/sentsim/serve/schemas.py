"""Request and response bodies of every route (pydantic models; they also make the OpenAPI schema)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator


def _unicode(value: object) -> object:
    """Refuses a string holding a lone surrogate (JSON's ``"\\ud800"``): it is not Unicode text, no tokenizer
    takes it, and it must fail here, with the request, not later in a batch shared with other requests."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as error:
            raise ValueError(f"character {error.start} is a lone UTF-16 surrogate ({value[error.start]!a}), "
                             "which is not Unicode text: send the text as valid UTF-8") from None
    return value


def non_empty(value: object) -> object:
    """An empty list gets its own message (a union of str and list would answer "not a valid string")."""
    if isinstance(value, list) and not value:
        raise ValueError("an empty list has nothing to embed: send at least one text")
    return value


#: Any string of Unicode text, the empty one included.
AnyText = Annotated[str, BeforeValidator(_unicode)]
#: A sentence: any non-empty string of Unicode text (an empty one has nothing to embed).
Text = Annotated[str, Field(min_length=1), BeforeValidator(_unicode)]
Texts = Annotated[list[Text], Field(min_length=1)]
#: A request's text or texts: one sentence or a non-empty list of them.
Inputs = Annotated[Text | Texts, BeforeValidator(non_empty)]
#: ``dimensions``: a whole number of at least 1, as JSON sends it (not true, "8" or 3.0).
StrictDimensions = Annotated[int | None, Field(strict=True, ge=1)]

TRUNCATE_HELP = "cut inputs longer than the model's max_seq_length tokens instead of refusing them"
PROMPT_HELP = "one of the model's saved prompts, put before every input (default: the model's default prompt)"
#: text-embeddings-inference's ``truncation_direction``: only the end of a text is ever cut here.
Direction = Literal["Right", "right"]
DIRECTION_HELP = "only Right (cut the end of an input) is supported"
#: What a client that sends OpenAI token ids (tiktoken's, meaningless to this model's vocabulary) is told.
TOKEN_IDS_REFUSED = ("token-id inputs are not supported: send the text itself (clients that tokenise for OpenAI "
                     "first, such as LangChain's OpenAIEmbeddings, need check_embedding_ctx_length=False)")


def is_token_ids(value: object) -> bool:
    """An int, a list of ints or a list of int lists: OpenAI's token-id forms of ``input``."""
    def ints(items: object) -> bool:
        return isinstance(items, list) and bool(items) and all(
            isinstance(item, int) and not isinstance(item, bool) for item in items)

    if isinstance(value, int) and not isinstance(value, bool):
        return True
    return ints(value) or (isinstance(value, list) and bool(value) and all(ints(item) for item in value))


def refuse_token_ids(value: object) -> object:
    """A validator for text fields: token ids (an OpenAI tokenizer's, meaningless to this model's vocabulary)
    are refused by name instead of pydantic's "not a valid string"."""
    if is_token_ids(value):
        raise ValueError(TOKEN_IDS_REFUSED)
    return value


class EmbeddingsRequest(BaseModel):
    """OpenAI's ``POST /v1/embeddings`` body (token-id inputs are not supported)."""

    input: Inputs = Field(description="a sentence or a list of sentences")
    model: str | None = Field(None, description="the served model's id (see GET /v1/models); optional")
    encoding_format: Literal["float", "base64"] = Field(
        "float", description="float: JSON numbers; base64: little-endian float32 bytes, base64-encoded"
    )
    dimensions: StrictDimensions = Field(
        None, description="keep the first N dimensions and re-normalise (for Matryoshka-trained models)"
    )
    user: str | None = Field(None, description="accepted for OpenAI compatibility, ignored")
    truncate: bool = Field(False, description=TRUNCATE_HELP)

    @field_validator("input", mode="before")
    @classmethod
    def _no_token_ids(cls, value: object) -> object:
        return refuse_token_ids(value)


class EmbeddingObject(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class Usage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingsResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[EmbeddingObject]
    model: str
    usage: Usage


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "sentsim"
    max_seq_length: int
    embedding_dimension: int
    calibrated: bool = Field(description="whether /similarity returns calibrated 0–5 scores")


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class TeiBody(BaseModel):
    """A text-embeddings-inference body, whose switches are optional (``Option<bool>``): a null ``normalize``
    or ``truncate``, which clients that fill in every field send, means the default."""

    @model_validator(mode="before")
    @classmethod
    def _defaults_for_nulls(cls, data: object) -> object:
        if isinstance(data, dict):
            return {key: value for key, value in data.items()
                    if not (key in ("normalize", "truncate") and value is None)}
        return data

    @field_validator("inputs", mode="before", check_fields=False)
    @classmethod
    def _no_token_ids(cls, value: object) -> object:
        return refuse_token_ids(value)  # TEI takes token ids too; only text is embedded here


class EmbedRequest(TeiBody):
    """Text-embeddings-inference's ``POST /embed`` body."""

    inputs: Inputs
    normalize: bool = Field(True, description="scale each vector to unit length (null: true)")
    truncate: bool = Field(False, description=TRUNCATE_HELP + " (null: false)")
    prompt_name: str | None = Field(None, description=PROMPT_HELP)
    truncation_direction: Direction = Field("Right", description=DIRECTION_HELP)
    dimensions: StrictDimensions = Field(None, description="keep the first N dimensions (then normalise)")


class SentencePair(BaseModel):
    sentence1: Text
    sentence2: Text


class SourceAndSentences(BaseModel):
    """Text-embeddings-inference's similarity input: one sentence against a list."""

    source_sentence: Text
    sentences: Texts


class TeiParameters(BaseModel):
    """The ``parameters`` of text-embeddings-inference's similarity body; ``truncate`` is honoured."""

    truncate: bool | None = Field(None, description=TRUNCATE_HELP)
    prompt_name: str | None = Field(None, description=PROMPT_HELP)
    truncation_direction: Direction = Field("Right", description=DIRECTION_HELP)


class SimilarityRequest(BaseModel):
    """Either ``pairs`` (sentsim's form) or ``inputs`` (text-embeddings-inference's form), not both."""

    model_config = ConfigDict(json_schema_extra={"oneOf": [{"required": ["pairs"]}, {"required": ["inputs"]}]})

    pairs: Annotated[list[SentencePair], Field(min_length=1)] | None = None
    inputs: SourceAndSentences | None = None
    model: str | None = None
    truncate: bool = Field(False, description=TRUNCATE_HELP)
    parameters: TeiParameters | None = Field(None, description="text-embeddings-inference's form: truncate")

    @model_validator(mode="after")
    def _one_form(self) -> SimilarityRequest:
        if (self.pairs is None) == (self.inputs is None):
            raise ValueError("give either 'pairs' or 'inputs' (with source_sentence and sentences), not both")
        return self

    @property
    def cut(self) -> bool:
        """Whether over-long inputs are cut: ``truncate`` at the top or in TEI's ``parameters``."""
        return self.truncate or bool(self.parameters and self.parameters.truncate)


class RootRequest(TeiBody):
    """text-embeddings-inference's compatibility route ``POST /``, where huggingface_hub's
    ``InferenceClient(SERVER_URL)`` posts: texts to embed, or TEI's one-against-many similarity form."""

    inputs: Annotated[Text | Texts | SourceAndSentences, BeforeValidator(non_empty)]
    normalize: bool = Field(True, description="texts: scale each vector to unit length (null: true)")
    truncate: bool = Field(False, description=TRUNCATE_HELP + " (null: false)")
    prompt_name: str | None = Field(None, description=PROMPT_HELP)
    truncation_direction: Direction = Field("Right", description=DIRECTION_HELP)
    dimensions: StrictDimensions = Field(None, description="texts: keep the first N dimensions (then normalise)")
    parameters: TeiParameters | None = Field(None, description="similarity form: truncate")


class PairScore(BaseModel):
    index: int
    cosine: float
    score: float | None = Field(description="calibrated 0–5 similarity; null when the model has no calibration")


class SimilarityResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[PairScore]
    model: str
    usage: Usage


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = Field(None, description="the request field at fault, where one is (OpenAI's shape)")
    code: str | int | None = None


class ErrorResponse(BaseModel):
    error: ErrorDetail


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    status: Literal["ready", "loading", "failed"]
    model: str | None = None
