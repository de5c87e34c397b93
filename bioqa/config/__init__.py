"""Typed schemas of the composed configs of the entry points, parsed before any work.

``bioqa.config.infer.validate_infer_config`` (every task, ensemble included), ``bioqa.training.config.
validate_train_config`` and ``bioqa.config.evaluate.validate_evaluate_config`` / ``validate_report_config`` turn the
composed config into frozen, typed models (types, ranges, enums, paths, the rules that join keys, every prompt
template) and read the input files, before anything is written, any model is loaded or any API is called; only those
models drive the run. Every problem is reported at once in one :class:`~bioqa.errors.ConfigError` line
(``key=value: what is wrong (what is allowed)`` clauses, :mod:`bioqa.parsing`); a bad file is one
:class:`~bioqa.errors.DataFileError` line (key, file, what is wrong). The submodules are imported one by one
(``train`` needs torch; the others do not).
"""
