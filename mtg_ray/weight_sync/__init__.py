"""Weight sync from the learner to vLLM engines: buckets, and the CPU (gloo) transfer backend.

`gloo` imports vLLM; import it only where vLLM is installed (engines and the trainer's sender).
"""

from mtg_ray.weight_sync.buckets import BucketMeta, bucket_meta, iter_buckets, pack, unpack

__all__ = ["BucketMeta", "bucket_meta", "iter_buckets", "pack", "unpack"]
