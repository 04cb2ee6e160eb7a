"""moto's DynamoDB made atomic, as DynamoDB is: one write (or transaction) at a time.

moto applies a conditional write or a transaction in steps with no lock, so two threads (or two
requests to moto server) can both pass a condition before either writes: two holds on one table
that DynamoDB would never allow. The local stack's moto server and the tests' in-process moto
run every DynamoDB call under one lock, so what they prove about races holds in AWS too.

Streams too: moto undoes a failed transaction by putting back a copy of each table made before
it, stream shard included, so the records of the writes it undid stay in the shard every open
shard iterator reads, and what is written next goes to the copy, which no iterator reads. Here a
failed transaction leaves the stream as it found it (the shard iterators read stays the table's
shard, without those records), and stream reads take the same lock, so no reader ever sees the
middle of a transaction. A table's stream then carries exactly its committed writes, as in AWS.

    .venv/bin/python -m devstack.atomic_moto -H 127.0.0.1 -p 4566   # moto server, made atomic

Update expressions cost what they cost in DynamoDB, a request's round trip, not more: moto parses
each ``UpdateExpression`` twice per request and its validator walks the whole tree once per node
for two of its checks (the clause count and the overlapping paths), so an update's CPU grows with
the square of its assignments (``docs/performance.md``, "The batch's wall clock and the
emulator"). Here an expression's text is parsed once and kept, the checks that depend only on the
text (and the names and the table's keys) run once per text, as does the request handler's
search of the tree for the names and values it uses, the validator copies the kept
tree with ``pickle`` rather than ``deepcopy``, and its walks over the tree test each node's kind
once per node class; the checks that depend on the values and the item
run on every request, as before. An update that creates its item is validated once, not twice
(moto's two passes see the same item unless the expression names a key attribute). Condition
expressions, which moto parses twice per request with the request's names and values bound
while it lexes, are parsed once per text and each request's names and values bound into a copy.
Answers and errors stay moto's own.

Its access line for every request is left out (the workers' polls would bury the handlers' lines
in ``make run``'s log) unless ``LOCAL_VERBOSE=1``, and so is werkzeug's development server warning.
"""

from __future__ import annotations

import functools
import logging
import os
import pickle
import sys
import threading
from collections.abc import Callable, Mapping
from typing import Any

from devstack.serving import LINE_FORMAT

_LOCK = threading.RLock()
_CALLS = (
    "get_item",
    "put_item",
    "update_item",
    "delete_item",
    "query",
    "scan",
    "batch_get_item",
    "batch_write_item",
    "transact_get_items",
    "transact_write_items",
)


_STREAM_CALLS = ("describe_stream", "get_shard_iterator", "get_records")


def make_dynamodb_atomic() -> None:
    """Serialize moto's DynamoDB and DynamoDB Streams backend calls, and make its update
    expressions cheap to validate (idempotent)."""
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodbstreams.models import DynamoDBStreamsBackend

    transact = DynamoDBBackend.transact_write_items
    if not getattr(transact, "_atomic", False):
        DynamoDBBackend.transact_write_items = _leaving_no_stream_trace(transact)  # type: ignore[method-assign]
    for backend, names in ((DynamoDBBackend, _CALLS), (DynamoDBStreamsBackend, _STREAM_CALLS)):
        for name in names:
            method = getattr(backend, name, None)
            if method is None or getattr(method, "_atomic", False):
                continue
            setattr(backend, name, _serialized(method))
    _parse_update_expressions_once()
    _parse_conditions_once()


def _serialized(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def call(*args: Any, **kwargs: Any) -> Any:
        with _LOCK:
            return method(*args, **kwargs)

    call._atomic = True  # type: ignore[attr-defined]
    return call


def _leaving_no_stream_trace(transact: Callable[..., Any]) -> Callable[..., Any]:
    """``transact_write_items`` whose failure restores each table's own stream shard, trimmed
    back to the records it had before (see the module's docstring). Runs under the lock."""

    @functools.wraps(transact)
    def call(backend: Any, *args: Any, **kwargs: Any) -> Any:
        shards = {
            name: (table.stream_shard, len(table.stream_shard.items))
            for name, table in backend.tables.items()
            if table.stream_shard is not None
        }
        try:
            return transact(backend, *args, **kwargs)
        except Exception:
            for name, (shard, length) in shards.items():
                table = backend.tables.get(name)
                if table is not None and table.stream_shard is not shard:
                    del shard.items[length:]
                    shard.table = table
                    table.stream_shard = shard
            raise

    return call


#: Parsed update expressions kept, by text: a service writes a handful of expression shapes.
_PARSED_EXPRESSIONS = 1024


def _parse_update_expressions_once() -> None:
    """moto's update expressions parsed once per text, their text-only checks run once per text
    and names, and the tree the validator works on copied by ``pickle`` (see the module's
    docstring). Nothing changes what moto answers: the checks skipped are the ones that passed
    for that very text, names and table keys."""
    from moto.dynamodb import models
    from moto.dynamodb.parsing.ast_nodes import (  # type: ignore[attr-defined]
        DepthFirstTraverser,
        ExpressionAttribute,
        ExpressionAttributeName,
    )
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser  # type: ignore[attr-defined]
    from moto.dynamodb.parsing.validators import (
        ActionCountValidator,
        OverlappingPathsValidator,
        UpdateExpressionValidator,
        UpdateHashRangeKeyValidator,
    )

    if getattr(models.UpdateExpressionValidator, "_parsed_once", False):
        return
    make = UpdateExpressionParser.make.__func__  # type: ignore[attr-defined]

    @functools.lru_cache(maxsize=_PARSED_EXPRESSIONS)
    def parsed(text: str) -> Any:
        # Refused text raises, and is not kept: it raises again next time.
        tree = make(UpdateExpressionParser, text)
        # moto's callers only read the tree: the validator works on a copy.
        tree._pristine = pickle.dumps(tree)
        tree._passed = set()
        tree.find_clauses = _found_once(tree.find_clauses)
        return tree

    textual = (ActionCountValidator, OverlappingPathsValidator, UpdateHashRangeKeyValidator)

    class CheaperUpdateExpressionValidator(UpdateExpressionValidator):  # type: ignore[misc]
        _parsed_once = True

        def __init__(
            self,
            expression: Any,
            expression_attribute_names: Any,
            expression_attribute_values: Any,
            item: Any,
            table: Any,
        ) -> None:
            pristine = getattr(expression, "_pristine", None)
            if pristine is None:  # a tree parsed elsewhere: moto's own way
                super().__init__(
                    expression, expression_attribute_names, expression_attribute_values, item, table
                )
                self._passed: set[Any] | None = None
                return
            self.expression_attribute_names = expression_attribute_names
            self.expression_attribute_values = expression_attribute_values
            self.item = item
            self.table = table
            self.processors = self.get_ast_processors()
            self._passed = expression._passed
            self._textual_key = (
                tuple(sorted((expression_attribute_names or {}).items())),
                tuple(table.table_key_attrs),
            )
            self._request = (expression, expression_attribute_names, expression_attribute_values, table)
            self._validated = _NEW_ITEM.take(self._request, item, lambda: _reads_no_key(self))
            if self._validated is None:
                self.node_to_validate = pickle.loads(pristine)  # noqa: S301 (our own bytes)

        def validate(self) -> Any:
            if self._passed is not None and self._validated is not None:
                return self._validated
            checked = self._passed is not None and self._textual_key in self._passed
            node = self.node_to_validate
            for processor in self.processors:
                if checked and isinstance(processor, textual):
                    continue
                node = processor.traverse(node)
            if self._passed is not None:
                self._passed.add(self._textual_key)
                if not self.item.attrs:
                    _NEW_ITEM.keep(self._request, node)
            return node

    def _reads_no_key(validator: Any) -> bool:
        """Whether the expression names none of the table's key attributes (with these names)."""
        expression, names = validator._request[0], validator.expression_attribute_names or {}
        verdicts = expression.__dict__.setdefault("_reads_no_key", {})
        verdict = verdicts.get(validator._textual_key)
        if verdict is None:
            read = {str(node.get_attribute_name()) for node in expression.find_clauses([ExpressionAttribute])}
            read |= {
                str(names.get(node.get_attribute_name_placeholder()))
                for node in expression.find_clauses([ExpressionAttributeName])
            }
            verdict = verdicts[validator._textual_key] = not read & set(validator.table.table_key_attrs)
        return bool(verdict)

    UpdateExpressionParser.make = classmethod(lambda cls, text: parsed(text))  # type: ignore[method-assign]
    models.UpdateExpressionValidator = CheaperUpdateExpressionValidator  # type: ignore[misc]
    DepthFirstTraverser.traverse = _traverse


#: Condition (and filter) expressions kept, by text, their values and names left unbound.
_PARSED_CONDITIONS = 1024


class _Unbound(tuple):  # type: ignore[type-arg]
    """Where a parsed condition reads an attribute name (``"#"``) or value (``":"``)."""

    __slots__ = ()


def _parse_conditions_once() -> None:
    """moto's condition expressions parsed once per text: moto reads each request's names and
    values into the tree while it parses (twice per request: the request handler and the
    backend each parse the condition), so nothing of a parse was reusable. Here a text is
    parsed once with its names and values left unbound, and each request binds its own into a
    copy of that tree, in the order moto reads them, so a missing one fails as it fails in
    moto. A text moto refuses is not kept: it is parsed, and refused, again each time."""
    from moto.dynamodb.comparisons import ConditionExpressionParser

    if getattr(ConditionExpressionParser.parse, "_parsed_once", False):
        return
    moto_parse = ConditionExpressionParser.parse

    class Unbinding(ConditionExpressionParser):  # type: ignore[misc]
        """moto's parser that leaves names and values unbound, and stops before building the
        condition's operations (they hold the values)."""

        parse = moto_parse

        def __init__(self, text: str) -> None:
            super().__init__(text, None, None)
            self.reads: list[_Unbound] = []

        def _lookup_expression_attribute_value(self, name: str) -> Any:
            self.reads.append(_Unbound((":", name)))
            return self.reads[-1]

        def _lookup_expression_attribute_name(self, name: str) -> Any:
            self.reads.append(_Unbound(("#", name)))
            return self.reads[-1]

        def _make_op_condition(self, node: Any) -> Any:
            return node

    @functools.lru_cache(maxsize=_PARSED_CONDITIONS)
    def parsed(text: str) -> tuple[Any, tuple[_Unbound, ...], tuple[str, ...], tuple[str, ...]]:
        parser = Unbinding(text)
        tree = parser.parse()
        return (
            tree,
            tuple(parser.reads),
            tuple(parser.expr_attr_names_found),
            tuple(parser.expr_attr_values_found),
        )

    def bind(node: Any, bound: Mapping[_Unbound, Any]) -> Any:
        value = node.value
        if type(value) is _Unbound:
            return node._replace(value=bound[value])
        if not node.children:
            return node
        return node._replace(children=[bind(child, bound) for child in node.children])

    def parse(self: Any) -> Any:
        text = self.condition_expression
        if not text:
            return moto_parse(self)
        try:
            tree, reads, names_found, values_found = parsed(text)
        except Exception:  # refused: moto's own parse, with the request's names and values
            return moto_parse(self)
        bound = {
            read: (
                self._lookup_expression_attribute_value(read[1])
                if read[0] == ":"
                else self._lookup_expression_attribute_name(read[1])
            )
            for read in reads
        }
        self.expr_attr_names_found.extend(names_found)
        self.expr_attr_values_found.extend(values_found)
        return self._make_op_condition(bind(tree, bound))

    parse._parsed_once = True  # type: ignore[attr-defined]
    parse.__wrapped__ = moto_parse  # type: ignore[attr-defined]
    ConditionExpressionParser.parse = parse  # type: ignore[method-assign]


def _found_once(find_clauses: Callable[[Any], list[Any]]) -> Callable[[Any], list[Any]]:
    """A kept tree's ``find_clauses``, answered once per list of clause types: moto's request
    handler searches every request's tree for its names and values, and a kept tree never
    changes (the validator works on a copy). Each caller gets a list of its own."""
    found: dict[tuple[type, ...], list[Any]] = {}

    def find(clause_types: Any) -> list[Any]:
        kinds = tuple(clause_types)
        if kinds not in found:
            found[kinds] = find_clauses(clause_types)
        return list(found[kinds])

    return find


class _NewItemValidation(threading.local):
    """moto validates an update of a key that has no item twice: against an empty item (so a
    refused expression creates nothing), then, once it stored the key, against the stored item,
    the key's attributes alone. When the expression names none of those, the two see the same
    item and make the same tree: the first one's is kept, for that request's second only (the
    same tree, names and values objects, on this thread: a backend call runs under the lock)."""

    def __init__(self) -> None:
        self.kept: tuple[tuple[Any, ...], Any] | None = None

    def keep(self, request: tuple[Any, ...], validated: Any) -> None:
        self.kept = (request, validated)

    def take(self, request: tuple[Any, ...], item: Any, reads_no_key: Callable[[], bool]) -> Any:
        kept, self.kept = self.kept, None
        if kept is None or any(a is not b for a, b in zip(kept[0], request, strict=True)):
            return None
        table = request[3]
        if not set(item.attrs) <= set(table.table_key_attrs) or not reads_no_key():
            return None
        return kept[1]


_NEW_ITEM = _NewItemValidation()


def _traverse(self: Any, root: Any) -> Any:
    """moto's depth-first walk of an expression tree (``DepthFirstTraverser``), node for node
    the same, with the node kinds a processor handles read once per walk rather than once per
    node, and the type tests (ABC ``isinstance`` checks, moto's nodes declare no virtual
    subclasses) answered once per node class. A processor that keeps moto's do-nothing
    ``pre_processing_of_child`` is not called before each child."""
    from moto.dynamodb.parsing.ast_nodes import DepthFirstTraverser, Node  # type: ignore[attr-defined]

    kinds = self.nodes_to_be_processed()
    processed: dict[type, bool] = {}
    before_child = (
        None
        if type(self).pre_processing_of_child is DepthFirstTraverser.pre_processing_of_child
        else self.pre_processing_of_child
    )

    def visit(node: Any, child_id: int) -> Any:
        kind = type(node)
        if not _is_node(kind, Node):
            return node
        parent = node.parent
        if node.children is not None:
            for i, child in enumerate(node.children):
                if before_child is not None:
                    before_child(node, i)
                visit(child, i)
        wanted = processed.get(kind)
        if wanted is None:
            wanted = processed[kind] = issubclass(kind, kinds)
        if wanted:
            node = self.process(node)
            node.parent = parent
            if parent:
                parent.children[child_id] = node
        return node

    return visit(root, -1)


_NODE_CLASSES: dict[type, bool] = {}


def _is_node(kind: type, node: type) -> bool:
    known = _NODE_CLASSES.get(kind)
    if known is None:
        known = _NODE_CLASSES[kind] = issubclass(kind, node)
    return known


class WithoutAccessLines(logging.Filter):
    """Drops werkzeug's access line (``127.0.0.1 - - [date] "POST / HTTP/1.1" 200 -``), one per
    request: the workers poll all the time, and those lines would bury every other. Its warnings
    and errors (a request that failed inside moto) still pass."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.INFO or " - - [" not in str(record.msg)


class WithoutDevelopmentServerWarning(logging.Filter):
    """Takes werkzeug's "WARNING: This is a development server..." out of its start-up lines: it
    is logged at INFO and says nothing to a developer running moto on loopback on purpose, yet
    reads as a warning in the stack's log. The lines after it (where moto listens) stay."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        if "This is a development server" in message:
            # The rest of that message is its " * Running on http://..." bullets.
            kept = [
                line.lstrip(" *")
                for line in message.splitlines()
                if "This is a development server" not in line
            ]
            record.msg = "\n".join(kept)
            return bool(kept)
        return True


def configure_logging(env: Mapping[str, str]) -> None:
    """moto server's lines (werkzeug's) in the local processes' one format, on stderr, without the
    development server warning, and without an access line per request unless ``LOCAL_VERBOSE=1``.
    """
    werkzeug = logging.getLogger("werkzeug")
    # A handler of our own: werkzeug then adds none (its own has no level and no format).
    stderr = logging.StreamHandler(sys.stderr)
    stderr.setFormatter(logging.Formatter(LINE_FORMAT))
    werkzeug.addHandler(stderr)
    werkzeug.setLevel(logging.INFO)
    werkzeug.addFilter(WithoutDevelopmentServerWarning())
    if env.get("LOCAL_VERBOSE", "") not in ("1", "true", "yes"):
        werkzeug.addFilter(WithoutAccessLines())


def main(argv: list[str] | None = None) -> None:
    make_dynamodb_atomic()
    configure_logging(os.environ)
    from moto.server import main as moto_server

    moto_server(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    main()
