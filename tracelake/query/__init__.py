"""The query layer shared by the UI and the archiver.

* :mod:`tracelake.query.filters` — the trace filter language: text -> AST (positions kept);
* :mod:`tracelake.query.compile` — AST -> parameterized ClickHouse SQL over trace aggregates;
* :mod:`tracelake.query.params` — query parameters (``{pN:Type}``) and running a query.

The UI's page queries (``tracelake.ui.queries``) and the archiver's retention-rule matching both
build on these, so a filter means the same thing on the trace list and in a retention rule.
"""
