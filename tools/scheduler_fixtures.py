"""Reference trajectories for the scheduler parity tests
(crates/tessera-pipeline/tests/scheduler_parity.rs).

For each case this builds a diffusers scheduler from a config, calls set_timesteps(n) and
steps it n times on a fixed random sample with a fresh random "model output" per step,
recording everything the Rust side must reproduce:

    timesteps, sigmas                 as diffusers holds them (UniPC: int64 / float32,
                                      FlowMatchEuler: float32 / float32)
    sample_0                          (1, 4, 2, 4, 6), the initial sample
    model_output_{i}                  the model output fed to step i
    sample_{i+1}                      step i's prev_sample
    x0_last (some cases)              the last step's x0 prediction, see below

Written to crates/tessera-pipeline/tests/fixtures/scheduler_<name>.safetensors, with the
config used beside it as scheduler_<name>.json (to_json_string: every key, defaults too).

Run: /work/venv/bin/python tools/scheduler_fixtures.py   (diffusers 0.42.1, CPU, ~1 s)
"""

import json
import os

import torch
from diffusers import FlowMatchEulerDiscreteScheduler, UniPCMultistepScheduler
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(__file__), "..", "crates", "tessera-pipeline", "tests", "fixtures")
SHAPE = (1, 4, 2, 4, 6)

# Wan 2.1's scheduler/scheduler_config.json as published (Wan-AI/Wan2.1-T2V-1.3B-Diffusers).
WAN_UNIPC = {
    "_class_name": "UniPCMultistepScheduler",
    "beta_end": 0.02,
    "beta_schedule": "linear",
    "beta_start": 0.0001,
    "disable_corrector": [],
    "dynamic_thresholding_ratio": 0.995,
    "final_sigmas_type": "zero",
    "flow_shift": 3.0,
    "lower_order_final": True,
    "num_train_timesteps": 1000,
    "predict_x0": True,
    "prediction_type": "flow_prediction",
    "rescale_betas_zero_snr": False,
    "sample_max_value": 1.0,
    "solver_order": 2,
    "solver_p": None,
    "solver_type": "bh2",
    "steps_offset": 0,
    "thresholding": False,
    "timestep_spacing": "linspace",
    "trained_betas": None,
    "use_beta_sigmas": False,
    "use_exponential_sigmas": False,
    "use_flow_sigmas": True,
    "use_karras_sigmas": False,
}


def unipc(**overrides):
    return UniPCMultistepScheduler.from_config({**WAN_UNIPC, **overrides})


def euler(**overrides):
    return FlowMatchEulerDiscreteScheduler.from_config({"num_train_timesteps": 1000, **overrides})


# name -> (scheduler, steps, model-output dtype, sample dtype, seed, record x0_last)
CASES = {
    "unipc_wan_4": (lambda: unipc(), 4, torch.float32, torch.float32, 1, False),
    "unipc_wan_10": (lambda: unipc(), 10, torch.float32, torch.float32, 2, False),
    # final_sigmas_type "sigma_min": the last step goes from sigma to the same sigma (a no-op
    # in the reference); with "zero" bh1 ends in NaN, see unipc_o3_bh1_zero_6.
    "unipc_o3_bh1_6": (lambda: unipc(solver_order=3, solver_type="bh1", final_sigmas_type="sigma_min"), 6, torch.float32, torch.float32, 3, False),
    # bh1 with a final sigma of 0: diffusers computes (alpha_t * B_h) * 0 = (-inf) * 0 = NaN
    # in the last (order-1) predictor. We land on the x0 prediction instead (the limit);
    # x0_last records it so the test can check the finite value.
    "unipc_o3_bh1_zero_6": (lambda: unipc(solver_order=3, solver_type="bh1"), 6, torch.float32, torch.float32, 4, True),
    "unipc_o3_shift5_nocorr_6": (lambda: unipc(solver_order=3, disable_corrector=[0, 2], flow_shift=5.0), 6, torch.float32, torch.float32, 5, False),
    # The real pipeline: f32 latents, bf16 transformer output.
    "unipc_wan_4_bf16": (lambda: unipc(), 4, torch.bfloat16, torch.float32, 6, False),
    # Everything bf16 (sample too), order 3: the half-precision rounding of every op.
    "unipc_o3_bf16_6": (lambda: unipc(solver_order=3), 6, torch.bfloat16, torch.bfloat16, 10, False),
    "euler_shift3_4": (lambda: euler(shift=3.0), 4, torch.float32, torch.float32, 7, False),
    "euler_shift5_4": (lambda: euler(shift=5.0), 4, torch.float32, torch.float32, 8, False),
    # Euler returns prev_sample in the model output's dtype: bf16 from the second step on.
    "euler_shift3_4_bf16": (lambda: euler(shift=3.0), 4, torch.bfloat16, torch.float32, 9, False),
}


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, (make, steps, mo_dtype, sample_dtype, seed, x0_last) in CASES.items():
        sched = make()
        sched.set_timesteps(steps)
        g = torch.Generator().manual_seed(seed)
        sample = torch.randn(SHAPE, generator=g)
        sample = sample.to(sample_dtype)
        tensors = {
            "timesteps": sched.timesteps.clone(),
            "sigmas": sched.sigmas.clone(),
            "sample_0": sample.clone(),
        }
        for i, t in enumerate(sched.timesteps):
            mo = torch.randn(SHAPE, generator=g).to(mo_dtype)
            tensors[f"model_output_{i}"] = mo.clone()
            sample = sched.step(mo, t, sample, return_dict=False)[0]
            tensors[f"sample_{i + 1}"] = sample.clone()
        if x0_last:
            tensors["x0_last"] = sched.model_outputs[-1].clone()
        save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(OUT, f"scheduler_{name}.safetensors"))
        cfg = json.loads(sched.to_json_string())
        with open(os.path.join(OUT, f"scheduler_{name}.json"), "w") as f:
            json.dump(cfg, f, indent=2, sort_keys=True)
            f.write("\n")
        finite = bool(torch.isfinite(sample.float()).all())
        print(f"{name}: {steps} steps, timesteps {sched.timesteps.tolist()}, final finite: {finite}")


if __name__ == "__main__":
    main()
