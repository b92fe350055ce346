"""Parsing SCIM filters (RFC 7644 §3.4.2.2) and PATCH paths (§3.5.2) into the syntax tree."""

from __future__ import annotations

import json
import re
from typing import NoReturn

from scim_core.errors import InvalidFilter, InvalidPath, ScimError
from scim_core.filter.ast import (
    COMPARISON_OPERATORS,
    And,
    Compare,
    Expr,
    Not,
    Or,
    PatchPath,
    Value,
    ValuePath,
)

DEFAULT_MAX_LENGTH = 4096
DEFAULT_MAX_DEPTH = 50
DEFAULT_MAX_TERMS = 100
"""Comparisons per filter (Entra and Okta send at most two)."""

_OPERATORS = COMPARISON_OPERATORS | {"pr"}
_KEYWORDS = _OPERATORS | {"and", "or", "not"}
_OPERATOR_LIST = "eq, ne, co, sw, ew, gt, ge, lt, le, pr"

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_SPACES = re.compile(r" *")
_WORD = re.compile(r'[^ ()\[\]"]+')
_BARE = re.compile(r"[^ )\]]+")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_PATH_CHARS = re.compile(r"[A-Za-z0-9_$:.\-]+")
_NAME = re.compile(r"[A-Za-z$][A-Za-z0-9_$\-]*")
_NAME_SUB = re.compile(r"[A-Za-z$][A-Za-z0-9_$\-]*(?:\.[A-Za-z$][A-Za-z0-9_$\-]*)?")
_SNIPPET = 30


def parse_filter(text: str, *, max_length: int = DEFAULT_MAX_LENGTH,
                 max_depth: int = DEFAULT_MAX_DEPTH,
                 max_terms: int = DEFAULT_MAX_TERMS) -> Expr:
    """The syntax tree of a URL-decoded ``filter`` query parameter.

    Raises ``InvalidFilter`` (and nothing else) for anything unparsable, longer than
    ``max_length`` characters, nesting parentheses/``not`` deeper than ``max_depth``, or
    holding more than ``max_terms`` comparisons. Parsing is a scanner plus an
    explicit-stack precedence loop: linear time, no recursion.

    Leniency, on purpose: keywords and operators ignore case; ``not(`` needs no space; a
    value that is not a JSON string, number, ``true``, ``false`` or ``null`` is a *bare
    token* string (old Entra documentation shows ``externalId eq jyoung``): any run of
    characters other than space, ``)`` and ``]`` that does not start with ``(``, ``[`` or
    ``"`` and is not a keyword (``and``, ``or``, ``not``, an operator). Entra's
    ``attr[f].sub op v`` becomes ``ValuePath(attr, And(f, Compare(sub, op, v)))``.
    """
    parser = _Parser(text, InvalidFilter, "filter", max_length, max_depth, max_terms)
    return parser.parse_filter()


def parse_path(text: str, *, max_length: int = DEFAULT_MAX_LENGTH,
               max_depth: int = DEFAULT_MAX_DEPTH,
               max_terms: int = DEFAULT_MAX_TERMS) -> PatchPath:
    """A PATCH ``path`` (``PATH = attrPath / valuePath [subAttr]``).

    ``attribute`` is everything before ``[`` exactly as written (it may be dotted or
    URN-qualified); ``filter`` is the bracketed filter, its paths relative to the element;
    ``sub`` is the name after ``].``. Raises ``InvalidPath``, or ``InvalidFilter`` for a
    filter of more than ``max_terms`` comparisons.
    """
    parser = _Parser(text, InvalidPath, "path", max_length, max_depth, max_terms)
    return parser.parse_path()


def _is_name(text: str) -> bool:
    return _NAME.fullmatch(text) is not None


def _is_path_name(text: str) -> bool:
    return _NAME_SUB.fullmatch(text) is not None


class _Parser:
    """One parse of one string; ``pos`` is the index of the next unread character."""

    def __init__(self, text: str, error: type[ScimError], what: str, max_length: int,
                 max_depth: int, max_terms: int) -> None:
        if not isinstance(text, str):
            raise error(f"The {what} must be a string.")
        self.text = text
        self.error = error
        self.what = what
        self.max_depth = max_depth
        self.max_terms = max_terms
        self.terms = 0
        self.pos = 0
        if len(text) > max_length:
            raise error(f"The {what} is longer than {max_length} characters.")
        bad = _CONTROL.search(text)
        if bad is not None:
            raise error(f"The {what} contains a control character at position {bad.start() + 1}.")
        if not text.strip(" "):
            raise error(f"The {what} is empty.")

    # -- entry points ----------------------------------------------------------------------

    def parse_filter(self) -> Expr:
        """The whole text as a filter; a stray ``)`` or ``]`` fails."""
        expr = self._expression(in_brackets=False)
        if self.pos < len(self.text):
            self._fail("unexpected ')'" if self._peek() == ")" else "unexpected ']'")
        return expr

    def parse_path(self) -> PatchPath:
        """The whole text as a PATCH path."""
        self._skip_spaces()
        start = self.pos
        word = self._match(_WORD)
        if word is None:
            self._fail("expected an attribute name")
        attribute = self._check_path(word, start)
        if self._peek() != "[":
            self._skip_spaces()
            if self.pos < len(self.text):
                self._fail("expected '[' or the end of the path")
            return PatchPath(attribute)
        self.pos += 1
        inner = self._expression(in_brackets=True)
        self._expect("]")
        sub = self._sub_attribute() if self._peek() == "." else None
        self._skip_spaces()
        if self.pos < len(self.text):
            self._fail("expected '.subAttribute' or the end of the path after ']'")
        return PatchPath(attribute, inner, sub)

    # -- filters ---------------------------------------------------------------------------

    def _expression(self, *, in_brackets: bool) -> Expr:
        """``FILTER`` up to the end of the text, an unmatched ``)`` or (in brackets) ``]``.

        Precedence is handled with explicit stacks: ``not`` > ``and`` > ``or``, both binary
        operators left-associative. Stack markers ``(`` and ``not(`` count towards depth.
        """
        operands: list[Expr] = []
        operators: list[str] = []
        depth = 0
        while True:
            self._skip_spaces()
            if self._peek() == "(":
                depth = self._open(operators, "(", depth)
                self.pos += 1
                continue
            if self._starts_not():
                depth = self._open(operators, "not(", depth)
                self.pos += 3
                self._skip_spaces()
                self.pos += 1
                continue
            operands.append(self._term(in_brackets=in_brackets))
            while True:
                self._skip_spaces()
                if self._peek() != ")" or depth == 0:
                    break
                self.pos += 1
                depth -= 1
                self._reduce(operands, operators)
            keyword = self._logical()
            if keyword is None:
                break
            while operators and operators[-1] in ("and", keyword):
                self._apply(operands, operators.pop())
            operators.append(keyword)
        if depth:
            self._fail("expected ')' to close a '(' opened earlier")
        self._reduce(operands, operators)
        return operands[0]

    def _open(self, operators: list[str], marker: str, depth: int) -> int:
        if depth + 1 > self.max_depth:
            self._fail(f"parentheses and 'not' nest deeper than {self.max_depth} levels")
        operators.append(marker)
        return depth + 1

    def _starts_not(self) -> bool:
        end = self.pos + 3
        if self.text[self.pos:end].lower() != "not":
            return False
        after = _SPACES.match(self.text, end)
        return after is not None and self.text[after.end():after.end() + 1] == "("

    def _reduce(self, operands: list[Expr], operators: list[str]) -> None:
        """Apply pending operators down to (and including) the innermost open marker."""
        while operators:
            op = operators.pop()
            if op == "(":
                return
            if op == "not(":
                operands.append(Not(operands.pop()))
                return
            self._apply(operands, op)

    @staticmethod
    def _apply(operands: list[Expr], op: str) -> None:
        right = operands.pop()
        left = operands.pop()
        operands.append(And(left, right) if op == "and" else Or(left, right))

    def _logical(self) -> str | None:
        """``and`` / ``or`` after a term, or None at the end of this (sub-)filter."""
        if self.pos >= len(self.text) or self._peek() in ")]":
            return None
        start = self.pos
        word = self._match(_WORD)
        lowered = word.lower() if word else ""
        if lowered not in ("and", "or"):
            self.pos = start
            self._fail("expected 'and', 'or' or the end of the filter")
        if self.pos >= len(self.text):
            self._fail(f"expected a filter after '{word}'")
        if self._peek() not in (" ", "("):
            self.pos = start
            self._fail(f"expected a space after '{word}'")
        return lowered

    def _term(self, *, in_brackets: bool) -> Expr:
        """``attrPath op value``, ``attrPath pr``, ``attr[f]`` or ``attr[f].sub op value``."""
        self.terms += 1
        if self.terms > self.max_terms:
            raise InvalidFilter(f"The {self.what} holds more than {self.max_terms} "
                                f"comparisons; the limit (max filter terms) is "
                                f"{self.max_terms}.")
        start = self.pos
        if self.pos >= len(self.text) or self._peek() in ")]":
            self._fail("expected an attribute name")
        if self._peek() in '"[':
            self._fail("expected an attribute name, not a value")
        word = self._match(_WORD)
        if word is None:
            self._fail("expected an attribute name")
        if word.lower() == "not":
            self.pos = start
            self._fail("'not' must be followed by a parenthesised filter: not (…)")
        path = self._check_path(word, start, relative=in_brackets)
        if self._peek() != "[":
            return self._comparison(path)
        if in_brackets:
            self._fail("value filters cannot be nested")
        self.pos += 1
        inner = self._expression(in_brackets=True)
        self._expect("]")
        if self._peek() != ".":
            return ValuePath(path, inner)
        sub = self._sub_attribute()
        return ValuePath(path, And(inner, self._comparison(sub)))

    def _comparison(self, path: str) -> Compare:
        if self._peek() != " ":
            self._fail(f"expected a space and an operator ({_OPERATOR_LIST}) after '{path[:40]}'")
        self._skip_spaces()
        start = self.pos
        word = self._match(_WORD)
        op = word.lower() if word else ""
        if op not in _OPERATORS:
            self.pos = start
            self._fail(f"expected an operator ({_OPERATOR_LIST}) after '{path[:40]}'")
        if op == "pr":
            self._end_of_token(f"'{word}'")
            return Compare(path, "pr")
        if self._peek() != " ":
            self._fail(f"expected a space and a value after '{word}'")
        self._skip_spaces()
        return Compare(path, op, self._value())

    def _value(self) -> Value:
        start = self.pos
        char = self._peek()
        if char == "":
            self._fail("expected a value")
        if char == '"':
            value: Value = self._string()
        elif char in "([":
            self._fail("expected a value (a quoted string, number, true, false or null)")
        else:
            token = self._match(_BARE)
            if token is None:
                self._fail("expected a value")
            value = self._literal(token, start)
        self._end_of_token("a value")
        return value

    def _string(self) -> str:
        start = self.pos
        found = _STRING.match(self.text, self.pos)
        if found is None:
            self._fail("unterminated string: add the closing '\"'")
        try:
            value = json.loads(found.group())
            value.encode("utf-8")
        except (ValueError, UnicodeError):
            self.pos = start
            self._fail("invalid string escape (use JSON escapes such as \\\" or \\u00e9)")
        assert isinstance(value, str)
        self.pos = found.end()
        return value

    def _literal(self, token: str, start: int) -> Value:
        lowered = token.lower()
        if lowered in ("true", "false"):
            return lowered == "true"
        if lowered == "null":
            return None
        if lowered in _KEYWORDS:
            self.pos = start
            self._fail(f"expected a value, found the keyword '{token}'")
        if _NUMBER.fullmatch(token):
            try:
                number: int | float = (
                    int(token) if token.lstrip("-").isdigit() else float(token)
                )
            except ValueError:
                number = float("inf")
            if isinstance(number, float) and number in (float("inf"), float("-inf")):
                self.pos = start
                self._fail("number out of range")
            return number
        return token

    # -- paths -----------------------------------------------------------------------------

    def _check_path(self, word: str, start: int, *, relative: bool = False) -> str:
        """``word`` if it is a valid ``attrPath`` (a sub-attribute name when ``relative``)."""
        if relative:
            if not _is_name(word):
                self.pos = start
                self._fail("inside [...] use a sub-attribute name such as type or value")
            return word
        if _PATH_CHARS.fullmatch(word) is None:
            self.pos = start
            self._fail("an attribute name may only contain letters, digits and _ $ - . :")
        if word[:4].lower() == "urn:":
            urn, _, rest = word.rpartition(":")
            valid = len(urn) > 4 and not urn.endswith((":", ".")) and _is_path_name(rest)
        else:
            valid = _is_path_name(word)
        if not valid:
            self.pos = start
            self._fail("expected an attribute path such as userName, name.givenName or "
                       "urn:…:User:manager")
        return word

    def _sub_attribute(self) -> str:
        self.pos += 1
        start = self.pos
        word = self._match(_WORD)
        if word is None or not _is_name(word):
            self.pos = start
            self._fail("expected a sub-attribute name after '].'")
        return word

    # -- scanning helpers ------------------------------------------------------------------

    def _peek(self) -> str:
        return self.text[self.pos:self.pos + 1]

    def _skip_spaces(self) -> None:
        found = _SPACES.match(self.text, self.pos)
        if found is not None:
            self.pos = found.end()

    def _match(self, pattern: re.Pattern[str]) -> str | None:
        found = pattern.match(self.text, self.pos)
        if found is None:
            return None
        self.pos = found.end()
        return found.group()

    def _expect(self, char: str) -> None:
        self._skip_spaces()
        if self._peek() != char:
            self._fail(f"expected '{char}'")
        self.pos += 1

    def _end_of_token(self, what: str) -> None:
        if self.pos < len(self.text) and self._peek() not in " )]":
            self._fail(f"expected a space after {what}")

    def _fail(self, message: str) -> NoReturn:
        found = self.text[self.pos:self.pos + _SNIPPET]
        shown = "".join(c if c.isprintable() else "?" for c in found)
        if self.pos + _SNIPPET < len(self.text):
            shown += "…"
        near = f" near '{shown}'" if shown else " at the end"
        raise self.error(f"Invalid {self.what} at position {self.pos + 1}{near}: {message}.")
