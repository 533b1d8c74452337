"""Ray actors: thin wrappers that host one `mtg_ray` object in an actor and add only what needs
Ray (the node's address). The groups that create and drive them are `mtg_ray.pipelines.groups`.

Resources are applied at the composition root (`ray.remote(Cls).options(...)`), never baked
into a decorator here.
"""
