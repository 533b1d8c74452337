"""The drivers: the only package of `mtg_ray` that imports Ray (and `actors`).

It creates the actor groups and runs the jobs; everything it computes comes from the Ray-free
core. Two sub-packages, one way round (`jobs` imports `groups`, never the reverse):
  groups  the actor groups and what places and feeds them: the learner and rollout groups, the
          weight push between them, a local Ray and placement, grading as Ray tasks, and the
          protocols the jobs need of the groups
  jobs    what drives the groups: the session, the one training loop and its batch sources,
          rewrite and evaluate (over the shared sample-and-grade step), the offline and online
          jobs, the lr selection and the study
"""
