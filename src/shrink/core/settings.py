"""Declared settings: a setting's name, type, default, range and meaning, written once.

A method declares its settings as a tuple of `Setting`; the recipe check (`check`), the defaults a
step runs with (`with_defaults`) and the reference table in the docs (`markdown_rows`) all read that
one declaration, so they cannot drift apart.
"""

from dataclasses import dataclass

from .errors import ConfigError

REQUIRED = object()  # the default of a setting that has none: the user must give it
NO_DEFAULT = object()  # optional with no value when absent (e.g. one of two alternatives)

TYPE_NAMES = {bool: "boolean", int: "integer", float: "number", str: "string", dict: "mapping", list: "list"}


@dataclass(frozen=True)
class Setting:
    name: str
    type: type
    default: object = REQUIRED
    description: str = ""
    choices: tuple = ()
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False  # the value must lie above `minimum`, not at it
    fields: tuple = ()  # a mapping setting's own declared settings (checked, defaulted and listed as name.field)

    def check(self, value, key):
        """Raise a ConfigError naming `key` unless `value` has this setting's type and lies in its range."""
        if self.type is float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        elif self.type is int:
            ok = isinstance(value, int) and not isinstance(value, bool)
        else:
            ok = isinstance(value, self.type)
        if not ok:
            name = TYPE_NAMES.get(self.type, self.type.__name__)
            raise ConfigError(key, f"must be {'an' if name[0] in 'aeiou' else 'a'} {name}, got {value!r}")
        if self.choices and value not in self.choices:
            raise ConfigError(key, f"must be one of {', '.join(map(str, self.choices))}, got {value!r}")
        if self.minimum is not None and (value <= self.minimum if self.exclusive_minimum else value < self.minimum):
            bound = "above" if self.exclusive_minimum else "at least"
            raise ConfigError(key, f"must be {bound} {self.minimum:g}, got {value!r}")
        if self.maximum is not None and value > self.maximum:
            raise ConfigError(key, f"must be at most {self.maximum:g}, got {value!r}")
        if self.fields:
            check(value, self.fields, key)

    def describe_range(self):
        if self.choices:
            return " / ".join(map(str, self.choices))
        if self.minimum is None and self.maximum is None:
            return ""
        if self.maximum is None:
            return f"{'>' if self.exclusive_minimum else '>='} {self.minimum:g}"
        if self.minimum is None:
            return f"<= {self.maximum:g}"
        return f"{'(' if self.exclusive_minimum else '['}{self.minimum:g}, {self.maximum:g}]"

    def describe_default(self):
        if self.default is REQUIRED:
            return "required"
        if self.default is NO_DEFAULT:
            return "none"
        return "null" if self.default is None else str(self.default)


def by_name(settings):
    return {s.name: s for s in settings}


def check(params, settings, where, also=()):
    """Check a mapping of settings against declarations: unknown keys (other than `also`), missing required
    ones, types and ranges. Errors name `where.<key>`."""
    declared = by_name(settings)
    for key, value in params.items():
        if key in declared:
            if value is not None or declared[key].default is not None:
                declared[key].check(value, f"{where}.{key}")
        elif key not in also:
            known = ", ".join(sorted(set(declared) | set(also))) or "none"
            raise ConfigError(f"{where}.{key}", f"not a setting here (known: {known})")
    for s in settings:
        if s.default is REQUIRED and s.name not in params:
            raise ConfigError(f"{where}.{s.name}", "is required")


def with_defaults(params, settings):
    """`params` with every declared setting it leaves out set to its declared default."""
    out = {s.name: s.default for s in settings if s.default not in (REQUIRED, NO_DEFAULT)}
    out.update(params)
    for s in settings:  # a given mapping setting gets its own fields' defaults
        if s.fields and isinstance(out.get(s.name), dict):
            out[s.name] = with_defaults(out[s.name], s.fields)
    return out


def markdown_rows(settings, prefix=""):
    """Reference-table rows: setting, type, default, range, meaning; a mapping's fields follow it as name.field."""
    rows = []
    for s in settings:
        rows.append(f"| `{prefix}{s.name}` | {TYPE_NAMES.get(s.type, s.type.__name__)} | {s.describe_default()} | "
                    f"{s.describe_range()} | {s.description} |")
        rows += markdown_rows(s.fields, f"{prefix}{s.name}.")
    return rows
