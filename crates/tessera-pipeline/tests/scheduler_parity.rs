//! Schedulers against diffusers 0.42.1 and against flows whose answer is known.
//!
//! Parity: tools/scheduler_fixtures.py records, per case, the reference's timesteps and
//! sigmas (compared exactly) and a trajectory driven by random model outputs; every step
//! must agree at relative L2 <= 1e-5, in f32 and in bf16 (torch's rounding of 0-d scalars
//! against half tensors is emulated, so those cases agree bit for bit).
//! Analytic: on the straight path x_sigma = sigma * noise + (1 - sigma) * x0 with the
//! constant velocity noise - x0, every scheduler must land on x0 (to ~1e-6).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use tessera_pipeline::noise::randn;
use tessera_pipeline::scheduler::{flow_sigmas, Scheduler};

const TOL: f64 = 1e-5;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn to_f64s(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64).unwrap().to_vec1::<f64>().unwrap()
}

struct Case {
    scheduler: Scheduler,
    refs: HashMap<String, Tensor>,
    steps: usize,
}

fn load(name: &str) -> Case {
    let scheduler = Scheduler::from_file(&fixtures().join(format!("scheduler_{name}.json"))).unwrap();
    let refs =
        candle_core::safetensors::load(fixtures().join(format!("scheduler_{name}.safetensors")), &Device::Cpu).unwrap();
    let steps = refs.keys().filter(|k| k.starts_with("model_output_")).count();
    Case { scheduler, refs, steps }
}

/// Runs the case's trajectory on our scheduler; returns the worst step error and our
/// final sample. `last_steps_skipped` leaves the last comparisons out (the NaN case).
fn run(name: &str, tol: f64, last_steps_skipped: usize) -> (f64, Tensor, Case) {
    let mut case = load(name);
    let s = &mut case.scheduler;
    s.set_timesteps(case.steps).unwrap();
    assert_eq!(s.timesteps(), to_f64s(&case.refs["timesteps"]).as_slice(), "{name}: timesteps");
    assert_eq!(s.sigmas(), to_f64s(&case.refs["sigmas"]).as_slice(), "{name}: sigmas");
    let mut x = case.refs["sample_0"].clone();
    let mut worst: f64 = 0.0;
    let timesteps = s.timesteps().to_vec();
    for (i, &t) in timesteps.iter().enumerate() {
        let v = &case.refs[&format!("model_output_{i}")];
        x = s.step(v, t, &x).unwrap();
        let want = &case.refs[&format!("sample_{}", i + 1)];
        assert_eq!(x.dtype(), want.dtype(), "{name}: dtype after step {i}");
        if i + last_steps_skipped < case.steps {
            let err = rel_l2(&x, want);
            println!("{name}: step {i} (t = {t}) rel L2 {err:.3e}");
            assert!(err <= tol, "{name}: step {i} rel L2 {err:e} > {tol:e}");
            worst = worst.max(err);
        }
    }
    (worst, x, case)
}

#[test]
fn unipc_wan_config_4_steps() {
    run("unipc_wan_4", TOL, 0);
}

#[test]
fn unipc_wan_config_10_steps() {
    run("unipc_wan_10", TOL, 0);
}

#[test]
fn unipc_order3_bh1_6_steps() {
    run("unipc_o3_bh1_6", TOL, 0);
}

#[test]
fn unipc_order3_shift5_with_disabled_correctors() {
    run("unipc_o3_shift5_nocorr_6", TOL, 0);
}

#[test]
fn unipc_f32_latents_bf16_velocity() {
    run("unipc_wan_4_bf16", TOL, 0);
}

#[test]
fn unipc_all_bf16_order3() {
    run("unipc_o3_bf16_6", TOL, 0);
}

#[test]
fn euler_shift3_4_steps() {
    run("euler_shift3_4", TOL, 0);
}

#[test]
fn euler_shift5_4_steps() {
    run("euler_shift5_4", TOL, 0);
}

#[test]
fn euler_bf16_velocity_returns_bf16() {
    run("euler_shift3_4_bf16", TOL, 0);
}

/// diffusers' bh1 with a final sigma of 0 computes (alpha_t * B(h)) * 0 = (-inf) * 0 in
/// its last, first-order step and returns NaN; we return the limit, the data prediction.
#[test]
fn regression_unipc_bh1_final_zero_sigma_is_finite() {
    let (_, x, case) = run("unipc_o3_bh1_zero_6", TOL, 1);
    let reference_last = &case.refs[&format!("sample_{}", case.steps)];
    let ref_nan = reference_last.to_dtype(DType::F32).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert!(ref_nan.iter().any(|v| v.is_nan()), "the reference no longer gives NaN here");
    let err = rel_l2(&x, &case.refs["x0_last"]);
    assert!(err <= TOL, "final sample vs the last data prediction: {err:e}");
}

#[test]
fn shift_override_equals_a_config_with_that_shift() {
    for (base, other, shift) in
        [("euler_shift3_4", "euler_shift5_4", 5.0), ("unipc_wan_4", "unipc_o3_shift5_nocorr_6", 5.0)]
    {
        let mut a = load(base).scheduler;
        let b = load(other);
        a.set_timesteps(3).unwrap();
        a.set_shift(shift).unwrap(); // recomputes the schedule already set
        assert_eq!(a.timesteps().len(), 3);
        a.set_timesteps(b.steps).unwrap();
        assert_eq!(a.timesteps(), to_f64s(&b.refs["timesteps"]).as_slice(), "{base} shifted to {shift}");
        assert_eq!(a.sigmas(), to_f64s(&b.refs["sigmas"]).as_slice(), "{base} shifted to {shift}");
        assert_eq!(a.shift(), shift);
    }
    let mut s = load("unipc_wan_4").scheduler;
    assert!(s.set_shift(0.0).is_err());
    assert!(s.set_shift(f64::NAN).is_err());
}

// ---------------------------------------------------------------------------------------
// Analytic flows.

const WAN_UNIPC: &str = r#"{"_class_name": "UniPCMultistepScheduler", "beta_end": 0.02, "beta_schedule": "linear",
 "beta_start": 0.0001, "disable_corrector": [], "dynamic_thresholding_ratio": 0.995, "final_sigmas_type": "zero",
 "flow_shift": 3.0, "lower_order_final": true, "num_train_timesteps": 1000, "predict_x0": true,
 "prediction_type": "flow_prediction", "rescale_betas_zero_snr": false, "sample_max_value": 1.0, "solver_order": 2,
 "solver_p": null, "solver_type": "bh2", "steps_offset": 0, "thresholding": false, "timestep_spacing": "linspace",
 "trained_betas": null, "use_beta_sigmas": false, "use_exponential_sigmas": false, "use_flow_sigmas": true,
 "use_karras_sigmas": false, "some_future_key": {"ignored": true}}"#;

fn unipc(order: usize, solver: &str) -> Scheduler {
    let json = WAN_UNIPC
        .replace("\"solver_order\": 2", &format!("\"solver_order\": {order}"))
        .replace("\"bh2\"", &format!("\"{solver}\""));
    Scheduler::from_json_str(&json).unwrap()
}

fn euler(shift: f64) -> Scheduler {
    Scheduler::from_json_str(&format!(
        r#"{{"_class_name": "FlowMatchEulerDiscreteScheduler", "num_train_timesteps": 1000, "shift": {shift}}}"#
    ))
    .unwrap()
}

fn all_schedulers() -> Vec<(String, Scheduler)> {
    let mut v = vec![("euler shift 1".to_string(), euler(1.0)), ("euler shift 3".to_string(), euler(3.0))];
    for order in 1..=3 {
        for solver in ["bh1", "bh2"] {
            v.push((format!("unipc order {order} {solver}"), unipc(order, solver)));
        }
    }
    v
}

/// Integrates `velocity` from pure noise (sigma = sigmas[0]) to the end of the schedule.
fn integrate(s: &mut Scheduler, steps: usize, start: &Tensor, velocity: &dyn Fn(&Tensor, f64) -> Tensor) -> Tensor {
    s.set_timesteps(steps).unwrap();
    let mut x = start.clone();
    let timesteps = s.timesteps().to_vec();
    for (i, &t) in timesteps.iter().enumerate() {
        let sigma = s.sigma_at(i).unwrap();
        let v = velocity(&x, sigma);
        x = s.step(&v, t, &x).unwrap();
    }
    x
}

#[test]
fn straight_path_lands_on_the_data() {
    let dev = Device::Cpu;
    for dtype in [DType::F64, DType::F32] {
        let x0 = randn(1, (1, 4, 2, 4, 6), &dev).unwrap().to_dtype(dtype).unwrap();
        let noise = randn(2, (1, 4, 2, 4, 6), &dev).unwrap().to_dtype(dtype).unwrap();
        let v = (&noise - &x0).unwrap();
        let mut worst: f64 = 0.0;
        for (name, mut s) in all_schedulers() {
            for steps in [1, 4, 10] {
                s.set_timesteps(steps).unwrap();
                // Start on the path at the first sigma (UniPC's is 1 - 1e-6, not 1).
                let s0 = s.sigma_at(0).unwrap();
                let start = (noise.affine(s0, 0.0).unwrap() + x0.affine(1.0 - s0, 0.0).unwrap()).unwrap();
                let out = integrate(&mut s, steps, &start, &|_, _| v.clone());
                let err = (&out - &x0)
                    .unwrap()
                    .abs()
                    .unwrap()
                    .to_dtype(DType::F64)
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .max(0)
                    .unwrap()
                    .to_scalar::<f64>()
                    .unwrap();
                worst = worst.max(err);
                assert!(err < 2e-6, "{name}, {steps} steps, {dtype:?}: max |x - x0| = {err:e}");
            }
        }
        println!("straight path, {dtype:?}: worst max |x - x0| = {worst:.2e}");
    }
}

/// Gaussian data x0 ~ N(m, c^2) per element: the flow-matching velocity is linear in x and
/// the flow is known, x_sigma = (1 - sigma) m + sqrt(sigma^2 + (1 - sigma)^2 c^2) * eps,
/// so noise eps must map to m + c * eps. A curved flow: the solvers' orders show (measured,
/// shift 1, rel L2 at 5/10/20/40 steps: Euler 2.1e-1 .. 2.4e-2, UniPC-2 bh2 3.1e-2 ..
/// 7.8e-4, UniPC-3 bh2 2.5e-2 .. 3.0e-4; the first-order last step into sigma 0 bounds
/// UniPC's error).
#[test]
fn gaussian_data_flow_converges_with_the_solver_order() {
    let dev = Device::Cpu;
    let (m, c) = (0.7f64, 0.8f64);
    let eps = randn(3, (1, 4, 2, 4, 6), &dev).unwrap().to_dtype(DType::F64).unwrap();
    let target = eps.affine(c, m).unwrap();
    let velocity = |x: &Tensor, t: f64| -> Tensor {
        // v = E[eps - x0 | x_t = x] = (t - (1 - t) c^2) / var_t * (x - (1 - t) m) - m
        let var = t * t + (1.0 - t) * (1.0 - t) * c * c;
        x.affine(1.0, -(1.0 - t) * m).unwrap().affine((t - (1.0 - t) * c * c) / var, -m).unwrap()
    };
    let error = |s: &mut Scheduler, steps: usize| {
        s.set_timesteps(steps).unwrap();
        // Start exactly on the flow at the first sigma.
        let t0 = s.sigma_at(0).unwrap();
        let start = eps.affine((t0 * t0 + (1.0 - t0) * (1.0 - t0) * c * c).sqrt(), (1.0 - t0) * m).unwrap();
        let out = integrate(s, steps, &start, &velocity);
        rel_l2(&out, &target)
    };
    let mut report = Vec::new();
    for (name, mut s) in [
        ("euler", euler(1.0)),
        ("unipc order 2 bh2", unipc(2, "bh2")),
        ("unipc order 3 bh2", unipc(3, "bh2")),
        ("unipc order 3 bh1", unipc(3, "bh1")),
    ] {
        s.set_shift(1.0).unwrap();
        let errs: Vec<f64> = [5, 10, 20, 40].iter().map(|&n| error(&mut s, n)).collect();
        let shown: Vec<String> = errs.iter().map(|e| format!("{e:.2e}")).collect();
        println!("{name}: rel L2 at 5/10/20/40 steps: {shown:?}");
        assert!(errs.windows(2).all(|w| w[1] < w[0]), "{name} does not converge: {errs:?}");
        report.push(errs);
    }
    // Euler is first order: doubling the steps halves the error.
    let euler_ratio = report[0][3] / report[0][2];
    assert!((0.4..0.6).contains(&euler_ratio), "Euler 40/20-step error ratio {euler_ratio}");
    // UniPC bh2 is at least second order and beats Euler at every step count.
    assert!(report[1][3] / report[1][2] < 0.3, "{report:?}");
    for n in 0..4 {
        assert!(report[1][n] < report[0][n] && report[2][n] < report[0][n], "{report:?}");
    }
    assert!(report[2][3] < 1e-3, "UniPC order 3 at 40 steps: {:e}", report[2][3]);
}

// ---------------------------------------------------------------------------------------
// Configs, schedule functions, noising.

#[test]
fn unsupported_configs_name_the_key() {
    let cases = [
        (WAN_UNIPC.replace("\"use_karras_sigmas\": false", "\"use_karras_sigmas\": true"), "use_karras_sigmas"),
        (WAN_UNIPC.replace("\"thresholding\": false", "\"thresholding\": true"), "thresholding"),
        (WAN_UNIPC.replace("\"use_flow_sigmas\": true", "\"use_flow_sigmas\": false"), "use_flow_sigmas"),
        (WAN_UNIPC.replace("\"flow_prediction\"", "\"epsilon\""), "prediction_type"),
        (WAN_UNIPC.replace("\"bh2\"", "\"bh3\""), "solver_type"),
        (
            r#"{"_class_name": "FlowMatchEulerDiscreteScheduler", "use_dynamic_shifting": true}"#.to_string(),
            "use_dynamic_shifting",
        ),
    ];
    for (json, key) in cases {
        let err = Scheduler::from_json_str(&json).unwrap_err().to_string();
        assert!(err.contains(key), "message should name `{key}`: {err}");
    }
    let err = Scheduler::from_json_str(r#"{"_class_name": "DDIMScheduler"}"#).unwrap_err().to_string();
    assert!(err.contains("DDIMScheduler"), "{err}");
}

#[test]
fn unknown_class_in_a_file_names_the_file() {
    let dir = std::env::temp_dir().join(format!("tessera_sched_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("scheduler_config.json");
    std::fs::write(&path, r#"{"_class_name": "LCMScheduler"}"#).unwrap();
    let err = Scheduler::from_file(&path).unwrap_err().to_string();
    std::fs::remove_dir_all(&dir).ok();
    assert!(err.contains("LCMScheduler") && err.contains("scheduler_config.json"), "{err}");
}

#[test]
fn zero_steps_is_an_error_and_step_needs_a_schedule() {
    let mut s = unipc(2, "bh2");
    assert!(s.set_timesteps(0).is_err());
    let x = Tensor::zeros((1, 2), DType::F32, &Device::Cpu).unwrap();
    assert!(s.step(&x, 999.0, &x).is_err());
    let mut e = euler(3.0);
    e.set_timesteps(2).unwrap();
    // FlowMatchEuler refuses a timestep that is not in its schedule.
    assert!(e.step(&x, 123.0, &x).is_err());
}

#[test]
fn flow_sigmas_are_shifted_linspace() {
    // np.linspace(1, 1/1000, 5)[:-1] = [1, 0.75025, 0.5005, 0.25075], shift 1: unchanged.
    assert_eq!(flow_sigmas(4, 1.0, 1000), vec![1.0, 0.75025, 0.5005, 0.25075000000000003]);
    let shifted = flow_sigmas(4, 3.0, 1000);
    assert!((shifted[2] - 3.0 * 0.5005 / (1.0 + 2.0 * 0.5005)).abs() < 1e-15);
}

#[test]
fn scale_noise_is_the_flow_forward_process() {
    let dev = Device::Cpu;
    let x0 = randn(4, (1, 4, 2, 4, 6), &dev).unwrap();
    let noise = randn(5, (1, 4, 2, 4, 6), &dev).unwrap();
    for mut s in [unipc(2, "bh2"), euler(3.0)] {
        s.set_timesteps(10).unwrap();
        let start = 4;
        s.set_begin_index(start);
        let t = s.timesteps()[start];
        let sigma = s.sigma_at(start).unwrap();
        let got = s.scale_noise(&x0, &noise, t).unwrap();
        let want = (noise.affine(sigma, 0.0).unwrap() + x0.affine(1.0 - sigma, 0.0).unwrap()).unwrap();
        assert!(rel_l2(&got, &want) < 1e-7);
        // SDEdit: stepping from the begin index goes on from there.
        let v = (&noise - &x0).unwrap();
        let next = s.step(&v, t, &got).unwrap();
        assert_eq!(s.step_index(), Some(start + 1));
        let sigma1 = s.sigma_at(start + 1).unwrap();
        let want1 = (noise.affine(sigma1, 0.0).unwrap() + x0.affine(1.0 - sigma1, 0.0).unwrap()).unwrap();
        assert!(rel_l2(&next, &want1) < 1e-5, "{}", rel_l2(&next, &want1));
    }
}

/// Relative L2 error, see tessera_models::testing.
fn rel_l2(a: &Tensor, b: &Tensor) -> f64 {
    tessera_models::testing::rel_l2(a, b).expect("comparable tensors")
}
