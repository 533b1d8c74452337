"""The actor groups and what places and feeds them (Ray, no job logic; imports no `jobs`):
  learner_group  W learner ranks (DeepSpeed) as one torch.distributed group
  rollout_group  N vLLM engines behind one object, kept in sync with the learner
  weight_push    the driver side of each weight-sync backend (shm, gloo, direct)
  cluster        starting a local Ray; waiting for the cluster to place a group
  grading        grading in parallel Ray tasks, with a deadline per task
  protocols      what the jobs need of the groups (the fast tests' stand-ins implement it)

`grading` is here, not in `jobs`: like the groups it is a pool of Ray workers the session sets
up once (as the run's grader) and the jobs only call, and it holds no job logic.
"""
