"""Optimizer methods, one per file, chosen by a study's ``optimizer.method``.

A method is a :class:`~autopeft.optimize.methods.base.MethodSettings` model and a
:class:`~autopeft.optimize.methods.base.Method` registered with
:func:`~autopeft.optimize.methods.base.register`; :mod:`.registry` imports them all and builds
:data:`~autopeft.optimize.methods.registry.OptimizerSettings`. ``bayesian`` is what ``gp`` and
``saas`` share; ``tpe`` is Optuna's TPE; ``sobol`` and ``random`` only sample the space. See docs/optimizer.md, "Methods".
"""
