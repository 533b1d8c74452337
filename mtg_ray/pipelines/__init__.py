"""The drivers: the only package of `mtg_ray` that imports Ray (and `actors`).

It creates the actor groups and runs the jobs; everything it computes comes from the Ray-free
core. Modules:
  session        a job's context: Ray, the tiny world, the policy, tokenizer, problem sets
  learner_group  W learner ranks (DeepSpeed) as one group;  rollout_group  N vLLM engines
  loop           the one training loop (cursor, policy version, checkpoints, weight push)
  batches        its batch sources: a fixed record set (offline) or per-step rewriting (online)
  generate       sample-and-grade, shared by rewrite and evaluate
  rewrite        the three stages over problem sets, as resumable shards
  evaluate       avg@n / pass@n per evaluation set
  offline        the rewrite, train, evaluate and main jobs;  online  the online jobs
  cluster, grading  starting a local Ray; grading in parallel Ray tasks
  protocols      what the drivers need of the groups (the fast tests' stand-ins implement it)
"""
