"""Online benchmark: the online step with and without overlap, side by side in one run.

Both runs train the same number of steps from the base model on the same problems, with one
rollout group (reset to the base weights between runs) and fresh learner groups. Serial: sample
the batch, train, sync. Overlapped: sample step t+1's batch while step t trains (policy lag 1).
Step time = the loop's wall time / steps. Last line:
`online_overlap_speedup=<x> sync_share=<y>` (x = serial step time / overlapped step time,
y = share of the serial step spent in weight sync).
"""

import argparse
import tempfile
from pathlib import Path

from safetensors.torch import load_file

from mtg_ray.config import compose
from mtg_ray.offline import jobs
from mtg_ray.online import jobs as online


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
        run = jobs.start(compose("online", base))
        objective = run.cfg.objective
        base_weights = load_file(Path(run.cfg.model.path) / "model.safetensors")
        timings = {}
        with jobs.rollout_group(run) as rollout:
            for mode in ("serial", "overlap"):
                cfg = compose("online", base + [f"online.overlap={mode == 'overlap'}"])
                mode_run = jobs.Run(cfg.with_model(run.cfg.model.path), run.world, run.out,
                                    run.tokenizer)  # fmt: skip
                rollout.update_weights(base_weights.items(), version=0)
                timings[mode] = online.online_job(mode_run, rollout, objective, mode)["timing"]
    step = {m: t["loop_s"] / t["steps_run"] for m, t in timings.items()}
    serial = timings["serial"]
    for m, t in timings.items():
        print(
            f"{m}: step {step[m]:.2f}s (generate {t['generate_s']:.1f}s, wait {t['wait_s']:.1f}s,"
            f" train {t['train_s']:.1f}s, sync {t['sync_s']:.1f}s over {t['steps_run']} steps)"
        )
    print(
        f"online_overlap_speedup={step['serial'] / step['overlap']:.3f} "
        f"sync_share={serial['sync_s'] / serial['loop_s']:.3f}"
    )


if __name__ == "__main__":
    main()
