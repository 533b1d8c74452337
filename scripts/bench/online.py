"""Online benchmark: the online step four ways, side by side in one run.

Every run trains the same number of steps from the base model on the same problems, with one
rollout group (each run first gives it its learner's start weights) and one learner group
(restarted for each run). Serial: sample the batch (the self stage, then the guided stage for
the problems it left: two generate calls), train, sync. Overlapped: sample step t+1's batch
while step t trains (policy lag 1). One call (`rewrite.one_call`): both stages of every
problem in one generate call. Step time = the loop's wall time / steps. Last line:
`online_overlap_speedup=<a> sync_share=<b> online_step_speedup=<x>` (a = serial / overlapped
step time, b = share of the serial step spent in weight sync, x = serial / one call overlapped:
today's step against the new one).
"""

import argparse
import dataclasses
import tempfile
from pathlib import Path

from mtg_ray.config import compose
from mtg_ray.pipelines.jobs.online import online_job
from mtg_ray.pipelines.jobs.session import groups, start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--world", default="small", choices=("small", "default"))
    parser.add_argument("--batch", type=int, default=16, help="problems per step")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        base = [
            f"world={args.world}",
            f"output_dir={tmp}",
            f"online.steps={args.steps}",
            f"online.save_every={args.steps}",
            f"learner.train_batch_size={args.batch}",
            "learner.micro_batch_size=4",
            "rollout.num_engines=1",
        ]
        run = start(compose("online", base))
        modes = {
            "serial": ["online.overlap=false"],
            "overlap": ["online.overlap=true"],
            "one_call": ["online.overlap=false", "rewrite.one_call=true"],
            "one_call_overlap": ["online.overlap=true", "rewrite.one_call=true"],
        }
        timings = {}
        with groups(run) as rollout:
            for mode, overrides in modes.items():
                cfg = compose("online", base + overrides)
                own = dataclasses.replace(run, cfg=cfg, out=Path(tmp) / mode)  # a folder each
                timings[mode] = online_job(own, rollout)["timing"]
    step = {m: t["loop_s"] / t["steps_run"] for m, t in timings.items()}
    serial = timings["serial"]
    for m, t in timings.items():
        print(
            f"{m}: step {step[m]:.2f}s (generate {t['generate_s']:.1f}s, wait {t['wait_s']:.1f}s,"
            f" train {t['train_s']:.1f}s, sync {t['sync_s']:.1f}s over {t['steps_run']} steps)"
        )
    print(
        f"online_overlap_speedup={step['serial'] / step['overlap']:.3f} "
        f"sync_share={serial['sync_s'] / serial['loop_s']:.3f} "
        f"online_step_speedup={step['serial'] / step['one_call_overlap']:.3f}"
    )


if __name__ == "__main__":
    main()
