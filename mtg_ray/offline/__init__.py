"""The offline method (one rewriting round, then training) as jobs on Ray.

Pure parts: `summary` (stage fractions, importance-weight variance), `train.batch_schedule`,
`report`. Drivers: `rewrite.run_rewrite`, `train.run_train`, and `jobs` (which starts Ray and the
actor groups). Entry point: `python scripts/run.py <job>`.
"""
