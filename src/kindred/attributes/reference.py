"""The reference's (Platform API v2) definition shape, read into Kindred's: `data_point`
(or `datapoint`), `conditions`, `calculation_type`, `time_period`. Both shapes are taken
where a definition is; what the reference shape cannot say is refused with its path."""

from __future__ import annotations

from kindred.domain.errors import InvalidBatch

__all__ = ["from_reference", "is_reference"]

# Reference operators -> the audience language's.
_OPERATORS = {
    "equals": "equals",
    "not_equals": "not_equals",
    "contains": "contains",
    "not_contains": "not_contains",
    "pattern": "pattern",
    "exists": "exists",
    "not_exists": "not_exists",
    "greater_than": "gt",
    "greater_or_equal": "ge",
    "less_than": "lt",
    "less_than_or_equal": "le",
    "between": "between",
    "before": "before",
    "after": "after",
    "between_dates": "between_dates",
}


def is_reference(doc: object) -> bool:
    return isinstance(doc, dict) and ("data_point" in doc or "datapoint" in doc)


def from_reference(doc: dict[str, object]) -> dict[str, object]:
    path = "definition"
    point = doc.get("data_point", doc.get("datapoint"))
    if not isinstance(point, dict):
        raise InvalidBatch("data_point is an object", f"{path}.data_point")
    event: dict[str, object] = {"event": point.get("event_type") or "custom_event"}
    if point.get("event_name") is not None:
        event["name"] = point["event_name"]
    conditions = doc.get("conditions") or []
    if not isinstance(conditions, list):
        raise InvalidBatch("conditions is a list", f"{path}.conditions")
    where = [_condition(c, f"{path}.conditions[{n}]") for n, c in enumerate(conditions)]
    if where:
        event["where"] = where
    result: dict[str, object] = {"calculation_type": doc.get("calculation_type"), "event": event}
    if point.get("attribute_name") is not None:
        result["attribute"] = point["attribute_name"]
    period = doc.get("time_period")
    if period is not None:
        result["window"] = _window(period, f"{path}.time_period")
    return result


def _condition(condition: object, path: str) -> dict[str, object]:
    if not isinstance(condition, dict):
        raise InvalidBatch("a condition is an object", path)
    operator = condition.get("operator")
    if operator not in _OPERATORS:
        raise InvalidBatch(
            f"operator is one of {', '.join(sorted(_OPERATORS))}", f"{path}.operator"
        )
    op = _OPERATORS[str(operator)]
    found: dict[str, object] = {"attribute": condition.get("attribute_name"), "op": op}
    if op in ("between", "between_dates"):
        found["value"] = [condition.get("min_value"), condition.get("max_value")]
    elif op not in ("exists", "not_exists"):
        value = condition.get("value")
        if op in ("gt", "ge", "lt", "le") and isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise InvalidBatch("expected a number", f"{path}.value") from None
        found["value"] = value
    return found


def _window(period: object, path: str) -> dict[str, object]:
    if not isinstance(period, dict):
        raise InvalidBatch("time_period is an object", path)
    if period.get("type") == "since":
        date = period.get("date")
        return {"type": "since", "date": date[:10] if isinstance(date, str) else date}
    if period.get("type") == "within":
        unit = period.get("within_unit") or "days"
        if unit not in ("days", "weeks"):
            raise InvalidBatch("within_unit is days or weeks", f"{path}.within_unit")
        return {"type": "within", str(unit): period.get("within")}
    raise InvalidBatch("time_period type is since or within", f"{path}.type")
