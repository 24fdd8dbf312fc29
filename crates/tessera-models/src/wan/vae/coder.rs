//! The Wan VAE's encoder and decoder stacks (`WanEncoder3d`, `WanDecoder3d`), for both
//! the Wan 2.1 layout (flat list of residual blocks and resamplers) and the Wan 2.2
//! residual layout (down/up blocks with averaging/duplicating shortcuts).

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

use super::blocks::{
    avg_down, dup_up, AttnBlock, Cache, CausalConv3d, ChannelRmsNorm, ResBlock, Resample, ResampleMode,
};
use super::AutoencoderKLWanConfig;

/// `WanMidBlock`: residual, attention, residual.
#[derive(Debug, Clone)]
struct MidBlock {
    res0: ResBlock,
    attn: AttnBlock,
    res1: ResBlock,
}

impl MidBlock {
    fn new(dim: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            res0: ResBlock::new(dim, dim, vb.pp("resnets.0"))?,
            attn: AttnBlock::new(dim, vb.pp("attentions.0"))?,
            res1: ResBlock::new(dim, dim, vb.pp("resnets.1"))?,
        })
    }

    fn forward(&self, x: &Tensor, cache: &mut Cache) -> Result<Tensor> {
        let x = self.res0.forward(x, cache)?;
        let x = self.attn.forward(&x)?;
        self.res1.forward(&x, cache)
    }
}

#[derive(Debug, Clone)]
enum Layer {
    // Boxed: a residual block is several times the size of the other variants.
    Res(Box<ResBlock>),
    Attn(AttnBlock),
    Resample(Resample),
    /// Wan 2.2: residual blocks, optional downsampler, plus `avg_down` of the input.
    ResidualDown {
        resnets: Vec<ResBlock>,
        down: Option<Resample>,
        out: usize,
        ft: usize,
        fs: usize,
    },
    /// Wan 2.2: residual blocks, optional upsampler, plus `dup_up` of the input.
    ResidualUp {
        resnets: Vec<ResBlock>,
        up: Option<Resample>,
        shortcut: Option<(usize, usize, usize)>,
    },
    /// Wan 2.1 decoder: residual blocks then an optional upsampler.
    Up {
        resnets: Vec<ResBlock>,
        up: Option<Resample>,
    },
}

impl Layer {
    fn forward(&self, x: &Tensor, cache: &mut Cache, first_chunk: bool) -> Result<Tensor> {
        let run = |resnets: &[ResBlock], x: &Tensor, cache: &mut Cache| -> Result<Tensor> {
            let mut x = x.clone();
            for r in resnets {
                x = r.forward(&x, cache)?;
            }
            Ok(x)
        };
        match self {
            Layer::Res(r) => r.forward(x, cache),
            Layer::Attn(a) => a.forward(x),
            Layer::Resample(r) => r.forward(x, cache),
            Layer::ResidualDown { resnets, down, out, ft, fs } => {
                let mut y = run(resnets, x, cache)?;
                if let Some(d) = down {
                    y = d.forward(&y, cache)?;
                }
                y + avg_down(x, *out, *ft, *fs)?
            }
            Layer::ResidualUp { resnets, up, shortcut } => {
                let mut y = run(resnets, x, cache)?;
                if let Some(u) = up {
                    y = u.forward(&y, cache)?;
                }
                match shortcut {
                    Some((out, ft, fs)) => y + dup_up(x, *out, *ft, *fs, first_chunk)?,
                    None => Ok(y),
                }
            }
            Layer::Up { resnets, up } => {
                let y = run(resnets, x, cache)?;
                match up {
                    Some(u) => u.forward(&y, cache),
                    None => Ok(y),
                }
            }
        }
    }
}

/// Shared shape of both stacks: conv_in, layers, mid block (position differs), norm, conv_out.
#[derive(Debug, Clone)]
pub struct Coder {
    conv_in: CausalConv3d,
    layers: Vec<Layer>,
    mid: MidBlock,
    mid_first: bool,
    norm_out: ChannelRmsNorm,
    conv_out: CausalConv3d,
}

impl Coder {
    pub fn encoder(cfg: &AutoencoderKLWanConfig, vb: VarBuilder) -> Result<Self> {
        let dim = cfg.base_dim;
        let mult = &cfg.dim_mult;
        let dims: Vec<usize> = std::iter::once(1).chain(mult.iter().copied()).map(|m| dim * m).collect();
        let n = mult.len();
        let mut layers = Vec::new();
        let mut scale = 1.0;
        let db = vb.pp("down_blocks");
        for i in 0..n {
            let (mut cin, cout) = (dims[i], dims[i + 1]);
            let last = i == n - 1;
            let tdown = !last && cfg.temperal_downsample.get(i).copied().unwrap_or(false);
            if cfg.is_residual {
                let b = db.pp(layers.len());
                let mut resnets = Vec::new();
                for j in 0..cfg.num_res_blocks {
                    resnets.push(ResBlock::new(cin, cout, b.pp("resnets").pp(j))?);
                    cin = cout;
                }
                let mode = if tdown { ResampleMode::Down3d } else { ResampleMode::Down2d };
                let down = if last { None } else { Some(Resample::new(cout, mode, cout, b.pp("downsampler"))?) };
                layers.push(Layer::ResidualDown {
                    resnets,
                    down,
                    out: cout,
                    ft: if tdown { 2 } else { 1 },
                    fs: if last { 1 } else { 2 },
                });
            } else {
                for _ in 0..cfg.num_res_blocks {
                    layers.push(Layer::Res(Box::new(ResBlock::new(cin, cout, db.pp(layers.len()))?)));
                    if cfg.attn_scales.contains(&scale) {
                        layers.push(Layer::Attn(AttnBlock::new(cout, db.pp(layers.len()))?));
                    }
                    cin = cout;
                }
                if !last {
                    let mode = if tdown { ResampleMode::Down3d } else { ResampleMode::Down2d };
                    layers.push(Layer::Resample(Resample::new(cout, mode, cout, db.pp(layers.len()))?));
                    scale /= 2.0;
                }
            }
        }
        let out = dims[n];
        Ok(Self {
            conv_in: CausalConv3d::new(cfg.in_channels, dims[0], (3, 3), 1, (1, 1), vb.pp("conv_in"))?,
            layers,
            mid: MidBlock::new(out, vb.pp("mid_block"))?,
            mid_first: false,
            norm_out: ChannelRmsNorm::new(out, false, vb.pp("norm_out"))?,
            conv_out: CausalConv3d::new(out, 2 * cfg.z_dim, (3, 3), 1, (1, 1), vb.pp("conv_out"))?,
        })
    }

    pub fn decoder(cfg: &AutoencoderKLWanConfig, vb: VarBuilder) -> Result<Self> {
        let dim = cfg.decoder_base_dim.unwrap_or(cfg.base_dim);
        let mult = &cfg.dim_mult;
        let n = mult.len();
        let dims: Vec<usize> =
            std::iter::once(mult[n - 1]).chain(mult.iter().rev().copied()).map(|m| dim * m).collect();
        // Temporal upsampling mirrors the encoder's downsampling.
        let tup: Vec<bool> = cfg.temperal_downsample.iter().rev().copied().collect();
        let ub = vb.pp("up_blocks");
        let mut layers = Vec::new();
        for i in 0..n {
            let (mut cin, cout) = (dims[i], dims[i + 1]);
            // Wan 2.1's upsamplers halve the channels, so later blocks take half.
            if i > 0 && !cfg.is_residual {
                cin /= 2;
            }
            let up_flag = i != n - 1;
            let t_up = up_flag && tup.get(i).copied().unwrap_or(false);
            let mode = if t_up { ResampleMode::Up3d } else { ResampleMode::Up2d };
            let b = ub.pp(i);
            let mut resnets = Vec::new();
            for j in 0..=cfg.num_res_blocks {
                resnets.push(ResBlock::new(cin, cout, b.pp("resnets").pp(j))?);
                cin = cout;
            }
            layers.push(if cfg.is_residual {
                Layer::ResidualUp {
                    resnets,
                    up: if up_flag { Some(Resample::new(cout, mode, cout, b.pp("upsampler"))?) } else { None },
                    shortcut: if up_flag { Some((cout, if t_up { 2 } else { 1 }, 2)) } else { None },
                }
            } else {
                Layer::Up {
                    resnets,
                    up: if up_flag { Some(Resample::new(cout, mode, cout / 2, b.pp("upsamplers.0"))?) } else { None },
                }
            });
        }
        let out = dims[n];
        Ok(Self {
            conv_in: CausalConv3d::new(cfg.z_dim, dims[0], (3, 3), 1, (1, 1), vb.pp("conv_in"))?,
            layers,
            mid: MidBlock::new(dims[0], vb.pp("mid_block"))?,
            mid_first: true,
            norm_out: ChannelRmsNorm::new(out, false, vb.pp("norm_out"))?,
            conv_out: CausalConv3d::new(out, cfg.out_channels, (3, 3), 1, (1, 1), vb.pp("conv_out"))?,
        })
    }

    /// One chunk through the stack, using and updating the frame caches.
    pub fn forward(&self, x: &Tensor, cache: &mut Cache, first_chunk: bool) -> Result<Tensor> {
        cache.start_chunk();
        let mut x = self.conv_in.forward_cached(x.clone(), cache)?;
        if self.mid_first {
            x = self.mid.forward(&x, cache)?;
        }
        for l in &self.layers {
            x = l.forward(&x, cache, first_chunk)?;
        }
        if !self.mid_first {
            x = self.mid.forward(&x, cache)?;
        }
        let y = self.norm_out.forward_silu(&x)?;
        drop(x);
        self.conv_out.forward_cached(y, cache)
    }
}
