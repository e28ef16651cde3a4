"""A compiled pre-check of FHIR resources against the R4B models: the common, valid case
without fhir.resources' Python per element.

fhir.resources validates every nested element through Python: a wrapper per complex
element, the model's `__init__`, a before-validator that loops over every field of the
model and an after-validator for choice types and required primitives (~200 µs for the HL7
example Observation, most of an ingested record's cost). `Precheck` builds, once, one
pydantic-core validator out of the models' own schemas: the primitive fields keep the
models' schemas (the same patterns and bounds; dates, times and decimals as below); each complex
type becomes a typed dict of its elements, resolved by reference and validated in Rust.
The models' Python-level rules are carried over as follows:

- null in a list of complex elements (`reject_null_complex_elements`): a list item of a
  complex type is a typed dict, which null is not; nulls stay allowed in primitive lists and
  their `_x` siblings, as in the models;
- choice elements (`value[x]`): at most one of a group, at least one where the group is
  required — an after-validator only on the types that have choices;
- required primitive elements (`status`, which the models also accept as `_status` with an
  extension): the value itself is required — stricter than the models;
- `resourceType`: required and fixed on a resource, refused anywhere else — stricter;
- null members, empty objects and lists, a primitive extension without `extension`:
  refused — stricter (and what `fhir._shape_ok` requires: an accepted resource has its shape);
- contained resources: only of the types compiled here — stricter;
- any model with a validator not listed above: refused wholesale — stricter;
- date, dateTime, instant and decimal values: fhir_core checks them in Python; here in Rust,
  accepting a subset (`_without_python`) — the rest goes to the model.

So `accepts` is sound, never complete: True means the R4B model accepts the resource too
(tests/backend/unit/services/test_fhir_precheck.py checks that on the HL7 examples and on mutations
of them); False means "ask the model", which then gives the authoritative answer and the
issues a refusal reports.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from fhir_core.types import Date, DateTime, FhirBase, FhirElementOrResourceBase, Instant
from pydantic_core import PydanticCustomError, SchemaValidator, ValidationError, core_schema

_BASE_VALIDATORS = frozenset({"reject_null_complex_elements", "validate_after_model_construction"})
"""fhir_core's validators on every model, whose rules the compiled schema carries."""

_DATE_TYPES = (Date, DateTime, Instant)
# The year and month of Date's and DateTime's own patterns (no year 0000, months 01-12)
_PARTIAL_DATE = r"\A(?:[0-9](?:[0-9](?:[0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)(?:-(?:0[1-9]|1[0-2]))?\z"
_DECIMAL_WRAPPER = "Decimal.__get_pydantic_core_schema__.<locals>._validate"
_PRIMITIVE_EXTENSION = "FHIRPrimitiveExtension"
_EXTENSION_OR_COMMENT = "validate_extension_or_fhir_comment_required"


class Unsupported(Exception):
    """A model whose rules the pre-check does not know: its elements always go to the model."""


class Precheck:
    """One compiled validator for the given resource types (and, contained in them, for
    the same types); `accepts` answers for any resource."""

    def __init__(self, resource_types: Iterable[str]) -> None:
        self._definitions: dict[str, core_schema.CoreSchema] = {}
        self._building: set[str] = set()
        names = sorted(set(resource_types))
        self._resources = {name: self._complex(get_fhir_model_class(name), resource=True) for name in names}
        union = core_schema.tagged_union_schema(self._resources, discriminator="resourceType")
        self._definitions["<contained>"] = {**union, "ref": "<contained>"}
        self._validator = SchemaValidator(
            core_schema.definitions_schema(union, list(self._definitions.values()))
        )

    @property
    def resource_types(self) -> frozenset[str]:
        return frozenset(self._resources)

    def accepts(self, resource: Mapping[str, Any], references: list[str] | None = None) -> bool:
        """True only if the resource's R4B model accepts it as well. When True, `references`
        (if given) has gained every string `reference` member of every object in it."""
        try:
            self._validator.validate_python(resource, context=references)
        except (ValidationError, ValueError, TypeError, KeyError, AttributeError):
            return False
        return True

    # --- building ----------------------------------------------------------------------

    def _complex(self, model: type[Any], *, resource: bool = False) -> core_schema.CoreSchema:
        """A reference to the typed dict of `model`'s elements (built on first use)."""
        ref = f"{model.__module__}.{model.__qualname__}"
        if ref not in self._definitions and ref not in self._building:
            self._building.add(ref)
            try:
                schema = self._typed_dict(model, resource=resource)
            except Unsupported:
                schema = core_schema.no_info_plain_validator_function(_refuse)
            self._definitions[ref] = {**schema, "ref": ref}
        return core_schema.definition_reference_schema(ref)

    def _typed_dict(self, model: type[Any], *, resource: bool) -> core_schema.CoreSchema:
        decorators = model.__pydantic_decorators__
        extra_rules = set(decorators.model_validators) - _BASE_VALIDATORS
        if decorators.field_validators or decorators.validators or decorators.root_validators:
            raise Unsupported(model.__name__)
        if extra_rules - {_EXTENSION_OR_COMMENT} or (
            extra_rules and model.__resource_type__ != _PRIMITIVE_EXTENSION
        ):
            raise Unsupported(model.__name__)
        required_primitives = {name for name, _ in model.get_required_fields(None)}
        fields: dict[str, core_schema.TypedDictField] = {}
        for name, field in _model_fields(model).items():
            if name == "fhir_comments":
                continue
            info = model.model_fields[name]
            alias = info.alias or name
            schema = field["schema"]
            required = schema["type"] != "default"
            inner = schema["schema"] if not required else schema
            if inner["type"] == "nullable":
                inner = inner["schema"]  # a null member is refused (FHIR JSON forbids it)
            required = required or name in required_primitives
            fields[alias] = core_schema.typed_dict_field(self._element(inner), required=required)
        if model.__resource_type__ == _PRIMITIVE_EXTENSION:
            fields["extension"] = {**fields["extension"], "required": True}
        if resource:
            fields["resourceType"] = core_schema.typed_dict_field(
                core_schema.literal_schema([model.__resource_type__]), required=True
            )
        elements = core_schema.typed_dict_schema(fields, extra_behavior="forbid")
        # an empty object is refused (FHIR JSON forbids it)
        typed: core_schema.CoreSchema = core_schema.chain_schema(
            [core_schema.dict_schema(min_length=1), elements]
        )
        choices = _choices(model)
        if choices:
            typed = core_schema.no_info_after_validator_function(_choice_rule(choices), typed)
        if "reference" in fields and fields["reference"]["schema"]["type"] != "definition-ref":
            # the only objects that can hold a string `reference` (a Reference, and a few whose
            # `reference` is a uri): collected for the caller
            typed = core_schema.with_info_after_validator_function(_collect_reference, typed)
        return typed

    def _element(self, schema: core_schema.CoreSchema) -> core_schema.CoreSchema:
        """A field's schema with every complex element replaced by its typed dict."""
        kind = schema["type"]
        if kind == "function-wrap" and _is_complex_wrapper(schema):
            source = _wrapped_type(schema)
            if issubclass(source, FhirElementOrResourceBase):
                return core_schema.definition_reference_schema("<contained>")
            return self._complex(source.get_model_klass())
        if kind == "list":
            items = self._element(schema["items_schema"])
            return core_schema.list_schema(items, min_length=1)
        if kind == "nullable":  # a list item: nulls align primitives with their `_x` siblings
            return core_schema.nullable_schema(self._element(schema["schema"]))
        if _has_complex(schema):
            raise Unsupported(kind)
        return _without_python(schema)  # a primitive: the model's own schema, in Rust


def _without_python(schema: core_schema.CoreSchema) -> core_schema.CoreSchema:
    """A primitive's schema with fhir_core's Python wrappers for date, dateTime, instant and
    decimal replaced by Rust checks that accept a subset of what the wrappers accept:

    - a date or time: a year or year and month (the wrapper keeps these as strings), or a
      string matching the type's own regular expression (whole string) that the wrapper's own
      inner date/datetime schema then parses. Leap seconds, which the wrapper also keeps as
      strings, fail that schema: left to the model;
    - a decimal: a Decimal (what parse_json makes of a number with a fraction or exponent)
      that is finite, or an integer within 64 bits; the wrapper accepts these (str() of either
      matches its regular expression) and more (strings like "6.3"), which go to the model.

    Only the verdict counts, never the value: a dateTime "2013" passes the lax datetime
    schema as Unix time 2013 s, where the model keeps the year — both accept it.
    """
    if schema["type"] != "function-wrap":
        return schema
    function = schema["function"]["function"]
    owner = getattr(function, "__self__", None)
    if owner in _DATE_TYPES and getattr(function, "__func__", None) is owner._validate.__func__:
        whole = core_schema.str_schema(pattern=rf"\A(?:{owner.pattern.pattern})\z", strict=True)
        parsed = core_schema.chain_schema([whole, schema["schema"]])
        if owner is Instant:
            return parsed
        # a year or a year and month, which the wrapper keeps as the string it is
        partial = core_schema.str_schema(pattern=_PARTIAL_DATE, strict=True)
        return core_schema.union_schema([parsed, partial], mode="left_to_right")
    if getattr(function, "__qualname__", "") == _DECIMAL_WRAPPER and function.__module__ == "fhir_core.types":
        return core_schema.union_schema(
            [
                core_schema.decimal_schema(strict=True, allow_inf_nan=False),
                core_schema.int_schema(strict=True, ge=-(2**63), le=2**63 - 1),
            ]
        )
    return schema


def _model_fields(model: type[Any]) -> dict[str, Any]:
    schema: Any = model.__pydantic_core_schema__
    while schema["type"] != "model-fields":
        schema = schema["schema"]
    fields: dict[str, Any] = schema["fields"]
    return fields


def _is_complex_wrapper(schema: Mapping[str, Any]) -> bool:
    function = schema["function"]["function"]
    return bool(getattr(function, "__qualname__", "").startswith("FhirBase.__get_pydantic_core_schema__"))


def _wrapped_type(schema: Mapping[str, Any]) -> type[FhirBase]:
    source: type[FhirBase] = inspect.getclosurevars(schema["function"]["function"]).nonlocals["source_type"]
    return source


def _has_complex(schema: Any) -> bool:
    if isinstance(schema, dict):
        if schema.get("type") == "function-wrap" and _is_complex_wrapper(schema):
            return True
        return any(_has_complex(value) for value in schema.values())
    if isinstance(schema, list):
        return any(_has_complex(value) for value in schema)
    return False


def _choices(model: type[Any]) -> list[tuple[frozenset[str], bool]]:
    """The model's choice groups as (element names, required)."""
    groups: dict[str, list[str]] = model.get_one_of_many_fields(None)
    out = []
    for names in groups.values():
        infos = [model.model_fields[name] for name in names]
        required = bool((infos[0].json_schema_extra or {}).get("one_of_many_required"))
        out.append((frozenset(info.alias or name for info, name in zip(infos, names, strict=True)), required))
    return out


def _choice_rule(choices: list[tuple[frozenset[str], bool]]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def check(element: dict[str, Any]) -> dict[str, Any]:
        for names, required in choices:
            present = len(names.intersection(element))
            if present > 1 or (required and not present):
                raise PydanticCustomError("fhir_choice", "one value of a choice element")
        return element

    return check


def _collect_reference(element: dict[str, Any], info: core_schema.ValidationInfo) -> dict[str, Any]:
    collected = info.context
    if collected is not None and isinstance(element.get("reference"), str):
        collected.append(element["reference"])
    return element


def _refuse(value: Any) -> Any:
    raise PydanticCustomError("fhir_unsupported", "left to the model")
