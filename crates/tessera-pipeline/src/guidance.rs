//! Classifier-free guidance (Ho & Salimans 2022): v = v_uncond + g * (v_cond - v_uncond).
//! Written in that order because diffusers' Wan pipelines compute it so, and float
//! addition is not associative: parity at 1e-4 depends on the same operation order.

use candle_core::{Result, Tensor};

pub fn cfg(cond: &Tensor, uncond: &Tensor, scale: f64) -> Result<Tensor> {
    uncond + ((cond - uncond)? * scale)?
}

/// Guidance is only run when it changes the result, as diffusers' `do_classifier_free_guidance`
/// (`guidance_scale > 1`).
pub fn enabled(scale: f64) -> bool {
    scale > 1.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn hand_computed() {
        let c = Tensor::new(&[3f32, 1.0], &Device::Cpu).unwrap();
        let u = Tensor::new(&[1f32, 1.0], &Device::Cpu).unwrap();
        let v: Vec<f32> = cfg(&c, &u, 5.0).unwrap().to_vec1().unwrap();
        assert_eq!(v, vec![11.0, 1.0]);
        assert!(!enabled(1.0) && enabled(1.5));
    }
}
