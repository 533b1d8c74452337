"""mtg-ray: data-rewriting off-policy SFT ("Mind the Gap", arXiv 2509.15157) on Ray.

`mtg_ray` holds the pure logic (grading, data, objectives, rewriting) and never imports Ray;
the Ray actors live in the top-level `actors` package.
"""

__version__ = "0.1.0"
