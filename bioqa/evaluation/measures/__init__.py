"""The measures, one module per family: each module's ``METRICS`` is a tuple of
:class:`~bioqa.evaluation.registry.MetricSpec`, collected by :func:`bioqa.evaluation.registry.registry`.

``phase_a`` and ``phase_b`` are the jar's columns, ``ideal`` the ROUGE scores of ideal answers; a new module here is a
new measure in ``metrics.json``, its CI, the evaluation table, the sweep summary (if headline) and the sweep report.
"""
