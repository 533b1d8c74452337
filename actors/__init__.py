"""Ray actors: thin wrappers that hold an engine (vLLM, DeepSpeed) and call `mtg_ray` code.

Resources are applied at the composition root (`ray.remote(**resources)(Cls)`), never baked
into a decorator here.
"""
