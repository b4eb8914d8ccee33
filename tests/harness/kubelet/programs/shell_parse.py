"""Parser of the POSIX shell subset containers run (`sh -c "..."`, exec probes, preStop hooks):

lists with `;`, newlines, `&&`, `||` (a trailing `&` is run in the foreground), pipelines with `|` and `!`,
`if/elif/else/fi`, `while`/`until ... do ... done`, `for x in ...; do ... done`, `{ ...; }`, `( ... )`,
assignments before a command, quoting ('...', "...", backslash), `$VAR`, `${VAR}`, `$?`, `$$`, `$(...)`,
and redirections (`>`, `>>`, `<`, `2>`, `2>&1`, `>&2`, `&>`). Not supported: functions, `case`, here-docs,
globbing, arithmetic: a script using them fails to parse, and the program says so in its log."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Tuple, Union

OPERATORS = ("&&", "||", ";;", ";", "|", "&", "(", ")")
REDIRECTS = ("2>&1", ">&2", "&>", ">>", "2>", ">", "<")
RESERVED = {"if", "then", "elif", "else", "fi", "while", "until", "do", "done", "for", "in", "{", "}", "!"}


class ShellSyntaxError(ValueError):
    pass


@dataclass
class Word:
    parts: List[Tuple[str, str, bool]]  # (kind: lit|var|cmd, text, quoted)

    @property
    def literal(self) -> Optional[str]:
        """The word's text when it is one unquoted literal (reserved words must be)."""
        if len(self.parts) == 1 and self.parts[0][0] == "lit" and not self.parts[0][2]:
            return self.parts[0][1]
        return None


Token = Union[Word, Tuple[str, str]]  # a word, or ("op", "&&") / ("redir", ">")


def _read_subst(text: str, i: int) -> Tuple[str, int]:
    """The script inside $( ... ) starting after '$(' at i; returns it and the index after ')'."""
    depth, j, quote = 1, i, ""
    while j < len(text):
        c = text[j]
        if quote:
            if c == quote:
                quote = ""
        elif c in "'\"":
            quote = c
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return text[i:j], j + 1
        j += 1
    raise ShellSyntaxError("unterminated $(")


def _read_var(text: str, i: int) -> Tuple[Optional[str], int]:
    """A variable reference after '$' at i: (name, next index), or (None, i) for a lone '$'."""
    if i < len(text) and text[i] == "{":
        end = text.find("}", i)
        if end < 0:
            raise ShellSyntaxError("unterminated ${")
        return text[i + 1:end].split(":-")[0], end + 1
    if i < len(text) and text[i] in "?$#0123456789":
        return text[i], i + 1
    j = i
    while j < len(text) and (text[j].isalnum() or text[j] == "_"):
        j += 1
    return (text[i:j], j) if j > i else (None, i)


def tokenize(text: str) -> List[Token]:
    tokens: List[Token] = []
    parts: List[Tuple[str, str, bool]] = []
    in_word = False
    i = 0

    def end_word() -> None:
        nonlocal parts, in_word
        if in_word:
            tokens.append(Word(parts))
        parts, in_word = [], False

    def lit(value: str, quoted: bool) -> None:
        nonlocal in_word
        in_word = True
        if parts and parts[-1][0] == "lit" and parts[-1][2] == quoted:
            parts[-1] = ("lit", parts[-1][1] + value, quoted)
        else:
            parts.append(("lit", value, quoted))

    while i < len(text):
        c = text[i]
        if c == "#" and not in_word:
            while i < len(text) and text[i] != "\n":
                i += 1
            continue
        if c == "\n":
            end_word()
            tokens.append(("op", ";"))
            i += 1
        elif c in " \t":
            end_word()
            i += 1
        elif c == "\\":
            if i + 1 < len(text) and text[i + 1] == "\n":
                i += 2
                continue
            lit(text[i + 1:i + 2], True)
            i += 2
        elif c == "'":
            end = text.find("'", i + 1)
            if end < 0:
                raise ShellSyntaxError("unterminated quoted string")
            lit(text[i + 1:end], True)
            in_word = True
            i = end + 1
        elif c == '"':
            i = _double_quoted(text, i + 1, parts, lit)
            in_word = True
        elif c == "$":
            i = _dollar(text, i, parts, lit, False)
            in_word = True
        elif not in_word and any(text.startswith(r, i) for r in REDIRECTS) or \
                (c in "<>" and in_word and parts and parts[-1][1].isdigit()):
            end_word()
            op = next(r for r in REDIRECTS if text.startswith(r, i))
            tokens.append(("redir", op))
            i += len(op)
        elif any(text.startswith(op, i) for op in OPERATORS):
            end_word()
            op = next(o for o in OPERATORS if text.startswith(o, i))
            tokens.append(("op", op))
            i += len(op)
        else:
            lit(c, False)
            i += 1
    end_word()
    return tokens


def _dollar(text: str, i: int, parts: list, lit, quoted: bool) -> int:
    if text.startswith("$(", i):
        script, i = _read_subst(text, i + 2)
        parts.append(("cmd", script, quoted))
        return i
    name, j = _read_var(text, i + 1)
    if name is None:
        lit("$", quoted)
        return i + 1
    parts.append(("var", name, quoted))
    return j


def _double_quoted(text: str, i: int, parts: list, lit) -> int:
    lit("", True)
    while i < len(text):
        c = text[i]
        if c == '"':
            return i + 1
        if c == "\\" and i + 1 < len(text) and text[i + 1] in '"\\$`':
            lit(text[i + 1], True)
            i += 2
        elif c == "$":
            i = _dollar(text, i, parts, lit, True)
        else:
            lit(c, True)
            i += 1
    raise ShellSyntaxError("unterminated double-quoted string")


# ---------------------------------------------------------------------- syntax tree


@dataclass
class Simple:
    assigns: List[Tuple[str, Word]] = field(default_factory=list)
    words: List[Word] = field(default_factory=list)
    redirs: List[Tuple[str, Optional[Word]]] = field(default_factory=list)


@dataclass
class Pipeline:
    commands: list
    negate: bool = False


@dataclass
class AndOr:
    first: Pipeline
    rest: List[Tuple[str, Pipeline]] = field(default_factory=list)


@dataclass
class Sequence:
    items: List[AndOr]


@dataclass
class If:
    branches: List[Tuple[Sequence, Sequence]]
    otherwise: Optional[Sequence] = None


@dataclass
class Loop:
    condition: Sequence
    body: Sequence
    until: bool = False


@dataclass
class For:
    name: str
    words: List[Word]
    body: Sequence


@dataclass
class Group:
    body: Sequence
    subshell: bool = False


class Parser:
    def __init__(self, tokens: List[Token]) -> None:
        self.tokens = tokens
        self.pos = 0

    def peek(self) -> Optional[Token]:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> Token:
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def at_word(self, *names: str) -> bool:
        token = self.peek()
        return isinstance(token, Word) and token.literal in names

    def at_op(self, *ops: str) -> bool:
        token = self.peek()
        return isinstance(token, tuple) and token[0] == "op" and token[1] in ops

    def expect_word(self, name: str) -> None:
        if not self.at_word(name):
            raise ShellSyntaxError(f"expected '{name}'")
        self.take()

    def skip_separators(self) -> None:
        while self.at_op(";", "&"):
            self.take()

    def sequence(self, *stop: str) -> Sequence:
        items = []
        self.skip_separators()
        while self.peek() is not None and not self.at_word(*stop) and not self.at_op(")"):
            items.append(self.and_or())
            if self.at_op(";", "&"):
                self.skip_separators()
            elif self.peek() is not None and not self.at_word(*stop) and not self.at_op(")"):
                raise ShellSyntaxError(f"unexpected {self.peek()!r}")
        return Sequence(items)

    def and_or(self) -> AndOr:
        node = AndOr(self.pipeline())
        while self.at_op("&&", "||"):
            op = self.take()[1]  # type: ignore[index]
            self.skip_newlines()
            node.rest.append((op, self.pipeline()))
        return node

    def skip_newlines(self) -> None:
        while self.at_op(";"):
            self.take()

    def pipeline(self) -> Pipeline:
        negate = False
        if self.at_word("!"):
            self.take()
            negate = True
        commands = [self.command()]
        while self.at_op("|"):
            self.take()
            commands.append(self.command())
        return Pipeline(commands, negate)

    def command(self):
        if self.at_word("if"):
            self.take()
            branches = []
            condition = self.sequence("then")
            self.expect_word("then")
            branches.append((condition, self.sequence("elif", "else", "fi")))
            otherwise = None
            while self.at_word("elif"):
                self.take()
                condition = self.sequence("then")
                self.expect_word("then")
                branches.append((condition, self.sequence("elif", "else", "fi")))
            if self.at_word("else"):
                self.take()
                otherwise = self.sequence("fi")
            self.expect_word("fi")
            return If(branches, otherwise)
        if self.at_word("while", "until"):
            until = self.take().literal == "until"  # type: ignore[union-attr]
            condition = self.sequence("do")
            self.expect_word("do")
            body = self.sequence("done")
            self.expect_word("done")
            return Loop(condition, body, until)
        if self.at_word("for"):
            self.take()
            name = self.take()
            if not isinstance(name, Word) or not name.literal:
                raise ShellSyntaxError("bad for loop")
            words = []
            if self.at_word("in"):
                self.take()
                while isinstance(self.peek(), Word) and not self.at_word("do"):
                    words.append(self.take())
            self.skip_separators()
            self.expect_word("do")
            body = self.sequence("done")
            self.expect_word("done")
            return For(name.literal, words, body)
        if self.at_word("{"):
            self.take()
            body = self.sequence("}")
            self.expect_word("}")
            return Group(body)
        if self.at_op("("):
            self.take()
            body = self.sequence()
            if not self.at_op(")"):
                raise ShellSyntaxError("expected ')'")
            self.take()
            return Group(body, subshell=True)
        return self.simple()

    def simple(self) -> Simple:
        node = Simple()
        while True:
            token = self.peek()
            if isinstance(token, Word):
                text = token.literal
                if not node.words and text and "=" in text and text.split("=", 1)[0].isidentifier():
                    name, value = text.split("=", 1)
                    node.assigns.append((name, Word([("lit", value, False)])))
                elif not node.words and token.parts and token.parts[0][0] == "lit" and not token.parts[0][2] \
                        and "=" in token.parts[0][1] and token.parts[0][1].split("=", 1)[0].isidentifier():
                    name, first = token.parts[0][1].split("=", 1)
                    node.assigns.append((name, Word([("lit", first, False)] + token.parts[1:])))
                else:
                    node.words.append(token)
                self.take()
            elif isinstance(token, tuple) and token[0] == "redir":
                self.take()
                target = None
                if token[1] not in ("2>&1", ">&2"):
                    target = self.take()
                    if not isinstance(target, Word):
                        raise ShellSyntaxError("redirection without a target")
                node.redirs.append((token[1], target))
            else:
                break
        if not node.words and not node.assigns and not node.redirs:
            raise ShellSyntaxError(f"syntax error near {token!r}")
        return node


def parse(script: str) -> Sequence:
    parser = Parser(tokenize(script))
    tree = parser.sequence()
    if parser.peek() is not None:
        raise ShellSyntaxError(f"syntax error near {parser.peek()!r}")
    return tree
