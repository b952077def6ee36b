"""The ``/generate`` JSON contract gate of SGLang 0.5.23, mirrored for the embedded server.

SGLang checks every ``/generate`` body against its generated schema before serving it
(``srt/entrypoints/http_server.py`` 933-939 → ``entrypoints/api_contract.py`` →
``sglang/api/v1/api_types.py`` ``decode_GenerateRequest``): unknown keys inside
``sampling_params`` and inside media objects are refused, JSON types are checked strictly (no
``"0.7"`` for a float, no ``1`` for a bool), unknown *top-level* keys are ignored. A violation is
HTTP 400 with ``{"error": "<serde-style text>"}``. ``contract_error(body)`` returns that text or
None; the differential test in ``tests/rollout/test_sglang_conformance.py`` runs a corpus through
this function and SGLang's own and expects the same verdicts.
"""

from __future__ import annotations

from typing import Any

# api_types.py SamplingParams, in declaration order (the order serde lists them in its message)
_INT, _FLOAT, _BOOL, _STR, _STR_OR_LIST, _INTS, _ANY, _MAP, _STRS = range(9)
SAMPLING_FIELDS: dict[str, int] = {
    "max_new_tokens": _INT, "stop": _STR_OR_LIST, "stop_token_ids": _INTS, "stop_regex": _STR_OR_LIST,
    "temperature": _FLOAT, "top_p": _FLOAT, "top_k": _INT, "min_p": _FLOAT, "frequency_penalty": _FLOAT,
    "presence_penalty": _FLOAT, "repetition_penalty": _FLOAT, "min_new_tokens": _INT, "n": _INT,
    "json_schema": _STR, "regex": _STR, "ebnf": _STR, "structural_tag": _STR, "ignore_eos": _BOOL,
    "skip_special_tokens": _BOOL, "spaces_between_special_tokens": _BOOL, "no_stop_trim": _BOOL,
    "stream_interval": _INT, "logit_bias": _MAP, "sampling_seed": _INT, "custom_params": _ANY,
    "beam_width": _INT, "watermark": _ANY, "choice": _STRS,
}
# api_types.py MediaRef
MEDIA_REF_FIELDS: dict[str, int] = {
    "url": _STR, "detail": _STR, "max_dynamic_patch": _INT, "content_hash": _STR, "min_pixels": _INT,
    "max_pixels": _INT, "total_max_pixels": _INT, "fps": _FLOAT, "num_frames": _INT, "min_frames": _INT,
    "max_frames": _INT, "max_tokens_per_frame": _INT, "max_image_tokens": _INT, "use_audio": _BOOL,
    "image_grid_thw": _ANY,
}


class ContractError(ValueError):
    pass


def _unexpected(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return f"boolean `{'true' if v else 'false'}`"
    if isinstance(v, int):
        return f"integer `{v}`"
    if isinstance(v, float):
        return f"floating point `{v}`"
    if isinstance(v, str):
        return f'string "{v}"'
    if isinstance(v, list):
        return "sequence"
    if isinstance(v, dict):
        return "map"
    return type(v).__name__


def _invalid(v: Any, expected: str) -> ContractError:
    return ContractError(f"invalid type: {_unexpected(v)}, expected {expected}")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check(kind: int, x: Any) -> None:
    if kind == _INT and not _is_int(x):
        raise _invalid(x, "i64")
    if kind == _FLOAT and not (_is_int(x) or isinstance(x, float)):
        raise _invalid(x, "f64")
    if kind == _BOOL and not isinstance(x, bool):
        raise _invalid(x, "a boolean")
    if kind == _STR and not isinstance(x, str):
        raise _invalid(x, "a string")
    if kind == _STR_OR_LIST:
        _str_or_list(x)
    if kind == _INTS:
        _seq(x, "a sequence")
        for item in x:
            if not _is_int(item):
                raise _invalid(item, "i64")
    if kind == _STRS:
        for item in _seq(x, "a sequence"):
            _check(_STR, item)
    if kind == _MAP:
        if not isinstance(x, dict):
            raise _invalid(x, "a map")
        for value in x.values():
            _check(_FLOAT, value)


def _seq(x: Any, expected: str) -> list:
    if not isinstance(x, list):
        raise _invalid(x, expected)
    return x


def _str_or_list(x: Any) -> None:
    if isinstance(x, list):
        for item in x:
            _check(_STR, item)
    elif not isinstance(x, str):
        raise _invalid(x, "a value or an array of values for StringOrList")


def _unknown(key: str, fields: list[str]) -> ContractError:
    listed = ", ".join(f"`{f}`" for f in fields)
    return ContractError(f"unknown field `{key}`, expected one of {listed}")


def _struct(value: Any, fields: dict[str, int], name: str, nullable_defaults: bool) -> None:
    if not isinstance(value, dict):
        raise _invalid(value, f"struct {name}")
    for key, x in value.items():
        if key not in fields:
            raise _unknown(key, list(fields))
        if x is None and (nullable_defaults or key != "url"):
            continue
        _check(fields[key], x)


def _media_item(x: Any) -> None:
    if isinstance(x, str):
        return
    if isinstance(x, dict):
        _struct(x, MEDIA_REF_FIELDS, "MediaRef", True)
        return
    raise _invalid(x, "one of the MediaItem shapes")


def _media_input(value: Any) -> None:
    """api_types.py ``decode_MediaInput``: the first element decides list vs list of lists."""
    if isinstance(value, (str, dict)):
        _media_item(value)
        return
    if not isinstance(value, list):
        raise _invalid(value, "one of the MediaInput shapes")
    nested = bool(value) and isinstance(value[0], list)
    for item in value:
        if item is None:
            continue
        if nested:
            for inner in _seq(item, "a sequence"):
                if inner is not None:
                    _media_item(inner)
        else:
            _media_item(item)


def _one_or_list(x: Any, kind: int, name: str) -> None:
    if isinstance(x, list):
        for item in x:
            _check(kind, item)
    else:
        try:
            _check(kind, x)
        except ContractError:
            raise _invalid(x, f"a value or an array of values for {name}") from None


def _token_ids(x: Any) -> None:
    if isinstance(x, list) and x and isinstance(x[0], list):
        for row in x:
            _check(_INTS, row)
    else:
        _check(_INTS, x)


def contract_error(body: Any) -> str | None:
    """The contract violation of a parsed ``/generate`` body, or None (``api_contract.py``)."""
    try:
        if not isinstance(body, dict):
            raise _invalid(body, "struct GenerateRequest")
        for key, x in body.items():
            if x is None:
                continue
            if key in ("text", "rid"):
                _str_or_list(x)
            elif key == "input_ids":
                _token_ids(x)
            elif key == "sampling_params":
                if not isinstance(x, (dict, list)):
                    raise _invalid(x, "a value or an array of values for SamplingParamsOrList")
                for params in (x if isinstance(x, list) else [x]):
                    _struct(params, SAMPLING_FIELDS, "SamplingParams", True)
            elif key in ("return_logprob", "return_hidden_states", "return_sampling_mask"):
                _one_or_list(x, _BOOL, "BoolOrList")
            elif key in ("logprob_start_len", "top_logprobs_num"):
                _one_or_list(x, _INT, "Int64OrList")
            elif key in ("stream", "return_text_in_logprobs", "return_prompt_token_ids"):
                _check(_BOOL, x)
            elif key in ("image_data", "video_data", "audio_data"):
                _media_input(x)
    except ContractError as exc:
        return str(exc)
    return None
