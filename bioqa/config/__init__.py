"""Typed schemas of the composed configs of the three entry points, checked before any work.

``bioqa.config.infer.validate_infer_config``, ``bioqa.training.config.validate_train_config`` and
``bioqa.config.evaluate.validate_evaluate_config`` check types, ranges, enums, paths and the keys that must agree,
and read the input files, before anything is written, any model is loaded or any API is called. A bad value is
one :class:`~bioqa.errors.ConfigError` line (key, value, what is allowed); a bad file is one
:class:`~bioqa.errors.DataFileError` line (key, file, what is wrong). The submodules are imported one by one
(``train`` needs torch; the others do not).
"""
