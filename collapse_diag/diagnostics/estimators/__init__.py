"""Pure estimators the diagnostics share: mixture densities, statistics, swap rule, Fisher grades.

No model, no I/O, no other diagnostic.
"""
