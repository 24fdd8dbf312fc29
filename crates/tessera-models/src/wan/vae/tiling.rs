//! Tiled VAE decode and encode (diffusers' `AutoencoderKLWan.enable_tiling`,
//! `tiled_decode`/`tiled_encode`): the frame is cut into overlapping tiles, each tile
//! runs through the coder on its own (over all frames, with its own causal caches), and
//! each tile's overlap with the tile above and the tile to its left is blended linearly
//! into it before its stride-sized corner is kept. Tiles, strides and the blending order
//! are diffusers', so the output equals diffusers' tiled output; it differs from the
//! untiled output near the seams (BENCHMARKS.md says how much).
//!
//! Memory: one tile's activations and caches, two rows of tile outputs (diffusers keeps
//! all of them) and the result, instead of whole-frame activations and caches.

use candle_core::{Result, Tensor};

/// Tile and stride sizes in output pixels (height, width), as diffusers' `enable_tiling`
/// takes them; the defaults are diffusers' (256 tiles every 192 pixels, so 64 blend).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tiling {
    pub tile: (usize, usize),
    pub stride: (usize, usize),
}

impl Default for Tiling {
    fn default() -> Self {
        Self { tile: (256, 256), stride: (192, 192) }
    }
}

impl Tiling {
    pub fn check(&self) -> std::result::Result<(), String> {
        let ok = |t: usize, s: usize| t > 0 && s > 0 && s <= t;
        if !ok(self.tile.0, self.stride.0) || !ok(self.tile.1, self.stride.1) {
            return Err(format!(
                "VAE tiles {:?} with strides {:?}: strides must be in 1..=tile",
                self.tile, self.stride
            ));
        }
        Ok(())
    }
}

/// `b` with its first `extent` rows (dim 3) or columns (dim 4) blended from `a`'s last
/// ones: row y becomes a[-extent + y] * (1 - y / extent) + b[y] * (y / extent), as
/// diffusers' `blend_v`/`blend_h` (the weights rounded to f32 as PyTorch multiplies an f32
/// tensor by a Python float).
pub fn blend(a: &Tensor, b: &Tensor, extent: usize, dim: usize) -> Result<Tensor> {
    let e = extent.min(a.dim(dim)?).min(b.dim(dim)?);
    if e == 0 {
        return Ok(b.clone());
    }
    let mut shape = vec![1usize; 5];
    shape[dim] = e;
    let w_b: Vec<f32> = (0..e).map(|y| (y as f64 / e as f64) as f32).collect();
    let w_a: Vec<f32> = (0..e).map(|y| (1.0 - y as f64 / e as f64) as f32).collect();
    let dev = b.device();
    let w_a = Tensor::from_vec(w_a, shape.clone(), dev)?.to_dtype(b.dtype())?;
    let w_b = Tensor::from_vec(w_b, shape, dev)?.to_dtype(b.dtype())?;
    let tail = a.narrow(dim, a.dim(dim)? - e, e)?;
    let head = b.narrow(dim, 0, e)?;
    let mixed = (tail.broadcast_mul(&w_a)? + head.broadcast_mul(&w_b)?)?;
    let rest = b.dim(dim)? - e;
    if rest == 0 {
        return Ok(mixed);
    }
    Tensor::cat(&[&mixed, &b.narrow(dim, e, rest)?], dim)
}

/// Runs `run` on every tile of `x` (B, C, T, H, W) and blends the outputs into one
/// (B, C', T', H * num / den, W * num / den): tiles of `tile_in` input cells every
/// `stride_in`, whose outputs overlap by `blend_out` cells and keep `stride_out` each.
/// The blending order is diffusers': row by row, each tile blended with the (already
/// blended) tile above and then the (already blended) tile to its left.
pub fn tiled(
    x: &Tensor,
    tile_in: (usize, usize),
    stride_in: (usize, usize),
    (stride_out, blend_out, size_out): ((usize, usize), (usize, usize), (usize, usize)),
    run: &mut dyn FnMut(&Tensor) -> Result<Tensor>,
) -> Result<Tensor> {
    let (_, _, _, h, w) = x.dims5()?;
    let mut prev: Vec<Tensor> = Vec::new();
    let mut strips = Vec::new();
    for i in (0..h).step_by(stride_in.0) {
        let mut row: Vec<Tensor> = Vec::new();
        let mut kept = Vec::new();
        for (n, j) in (0..w).step_by(stride_in.1).enumerate() {
            let th = tile_in.0.min(h - i);
            let tw = tile_in.1.min(w - j);
            let mut t = run(&x.narrow(3, i, th)?.narrow(4, j, tw)?)?;
            if let Some(above) = prev.get(n) {
                t = blend(above, &t, blend_out.0, 3)?;
            }
            if let Some(left) = row.last() {
                t = blend(left, &t, blend_out.1, 4)?;
            }
            let (oh, ow) = (t.dim(3)?, t.dim(4)?);
            kept.push(t.narrow(3, 0, stride_out.0.min(oh))?.narrow(4, 0, stride_out.1.min(ow))?);
            row.push(t);
        }
        strips.push(Tensor::cat(&kept, 4)?);
        prev = row;
    }
    let out = Tensor::cat(&strips, 3)?;
    let (oh, ow) = (out.dim(3)?.min(size_out.0), out.dim(4)?.min(size_out.1));
    out.narrow(3, 0, oh)?.narrow(4, 0, ow)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    #[test]
    fn blend_is_diffusers_ramp() {
        let a = Tensor::ones((1, 1, 1, 4, 1), DType::F32, &Device::Cpu).unwrap();
        let b = Tensor::zeros((1, 1, 1, 5, 1), DType::F32, &Device::Cpu).unwrap();
        let out = blend(&a, &b, 4, 3).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(out, vec![1.0, 0.75, 0.5, 0.25, 0.0]);
    }

    #[test]
    fn tiling_the_identity_gives_the_input() {
        // Tiles 4 every 3 of a 10x7 map: the blend mixes equal values, so the result is x.
        let x = Tensor::arange(0f32, 70.0, &Device::Cpu).unwrap().reshape((1, 1, 1, 10, 7)).unwrap();
        let y = tiled(&x, (4, 4), (3, 3), ((3, 3), (1, 1), (10, 7)), &mut |t| Ok(t.clone())).unwrap();
        let d = (y - &x).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(d < 1e-5, "{d}");
    }
}
