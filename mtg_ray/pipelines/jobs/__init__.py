"""The jobs and the loop that drive the groups (through `groups.protocols` alone, apart from
the session, which builds them):
  session    a job's context: Ray, the tiny world, the policy, tokenizer, problem sets, groups
  loop       the one training loop (cursor, policy version, checkpoints, weight push)
  batches    its batch sources: a fixed record set (offline) or per-step rewriting (online)
  generate   sample-and-grade, shared by rewrite and evaluate
  rewrite    the three stages over problem sets, as resumable shards
  evaluate   avg@n / pass@n per evaluation set
  offline    the rewrite, train, evaluate and main jobs;  online  the online jobs
  select_lr  one lr selection for every method;  study  seeds, statistics, results.md
  world_facts  the tiny world's base, teacher and oracle facts (scripts/build_world.py --measure)

`generate` is here, not in `groups`: it is a step of the rewrite and evaluate jobs (its only
readers), written against the `Rollout` protocol, with no Ray of its own.
"""
