//! The training convolution (tessera_models::conv_train) timed on the training VAE's
//! shapes, forward and backward, with the forward's rate:
//! `RAYON_NUM_THREADS=1 cargo run --release -p tessera-models --example conv_train_rate`
fn main() -> anyhow::Result<()> {
    for (c_in, c_out, t, hw) in [(16, 16, 7, 128), (16, 32, 7, 128), (32, 32, 7, 64), (32, 32, 4, 32), (3, 16, 7, 128)]
    {
        let x = [1, c_in, t, hw + 2, hw + 2];
        let w = [c_out, c_in, 3, 3, 3];
        // Best of 3.
        let mut best = [f64::MAX; 2];
        for _ in 0..3 {
            let r = tessera_models::conv_train::time_op(&x, &w, 0, 1)?;
            best = [best[0].min(r[0]), best[1].min(r[1])];
        }
        let flops = 2.0 * (c_in * c_out * 27 * (t - 2) * hw * hw) as f64;
        println!(
            "{c_in:>2} -> {c_out:>2}, {t} frames of {hw}x{hw}: forward {:.4} s ({:.1} GFLOP/s), backward {:.4} s",
            best[0],
            flops / best[0] / 1e9,
            best[1]
        );
    }
    Ok(())
}
