//! Process-wide allocator settings for numeric work: called first thing by the `tessera`
//! binary and the examples that time its kernels.

/// glibc's malloc serves blocks above its mmap threshold with fresh mappings and returns
/// freed memory to the kernel, so every large tensor candle allocates arrives as page
/// faults on zeroed pages: about a quarter of a transformer training step (`perf`,
/// BENCHMARKS.md, training). Keep blocks up to 32 MiB (glibc's maximum threshold) in the
/// heap and keep freed memory for reuse, as PyTorch's caching allocator does. Skipped
/// when the user set glibc's own MALLOC_* variables.
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        if std::env::vars_os().any(|(k, _)| k.to_string_lossy().starts_with("MALLOC_")) {
            return;
        }
        extern "C" {
            fn mallopt(param: i32, value: i32) -> i32;
        }
        const M_TRIM_THRESHOLD: i32 = -1;
        const M_TOP_PAD: i32 = -2;
        const M_MMAP_THRESHOLD: i32 = -3;
        // SAFETY: mallopt only sets glibc's allocator parameters; it is called before any
        // other thread exists.
        unsafe {
            mallopt(M_MMAP_THRESHOLD, 32 << 20);
            mallopt(M_TRIM_THRESHOLD, i32::MAX);
            mallopt(M_TOP_PAD, 64 << 20);
        }
    }
}
