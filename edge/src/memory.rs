//! Allocator limits for an edge box (glibc only).
//!
//! With a detector, the process allocates multi-megabyte activation buffers from several threads (capture,
//! one per inference worker, the async runtime). glibc then grows one malloc arena per thread and keeps
//! freed blocks, so peak RSS climbs with the thread count rather than with what is alive. Two arenas and a
//! fixed 1 MiB mmap threshold (large blocks go straight back to the kernel when freed) brought the Boai gate
//! camera edge (2 inference workers) from 198 to 179 MiB peak RSS (207 → 188 MB) at the same frame rate; measured with
//! `crowdgrid edge --config config/boai-school/edge-camera.toml` and `/proc/<pid>/status` VmHWM.
//! Environment variables (`MALLOC_ARENA_MAX`, `MALLOC_MMAP_THRESHOLD_`) still win when set.

/// Applies the limits; call once, first thing in `main`, before other threads start.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let set = |var: &str| std::env::var_os(var).is_some();
        // SAFETY: mallopt only changes allocator parameters; it is called before other threads exist.
        unsafe {
            if !set("MALLOC_ARENA_MAX") {
                libc::mallopt(libc::M_ARENA_MAX, 2);
            }
            if !set("MALLOC_MMAP_THRESHOLD_") {
                libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
            }
        }
    }
}
