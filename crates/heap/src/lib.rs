//! The workspace's one `unsafe` call, kept in a crate of its own so that every
//! other crate still forbids `unsafe` outright: glibc's `malloc_trim`, which gives
//! the system back the pages malloc holds free. The runtime calls [`trim`]
//! periodically (`emporium_runtime`'s heap module says why).

/// Whether [`trim`] does anything here (Linux with glibc).
pub const SUPPORTED: bool = cfg!(all(target_os = "linux", target_env = "gnu"));

/// Gives the free pages of every malloc arena back to the system; true when any
/// memory was released. Does nothing where the C library has no `malloc_trim`.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[expect(unsafe_code, reason = "FFI: glibc has no safe wrapper for malloc_trim")]
pub fn trim() -> bool {
    // SAFETY: malloc_trim takes no pointers and has no caller-side invariants; glibc
    // serializes it with every other allocator call through the arenas' locks.
    unsafe { libc::malloc_trim(0) == 1 }
}

/// Gives the free pages of every malloc arena back to the system; true when any
/// memory was released. Does nothing where the C library has no `malloc_trim`.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn trim() -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Resident memory of this process, in bytes (VmRSS).
    fn resident() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS");
        kib * 1024
    }

    /// Memory freed below a block still in use stays resident until a trim gives
    /// it back.
    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn a_trim_gives_back_freed_memory_below_a_live_block() {
        // 32 MiB in small blocks (below the mmap threshold), all freed but the
        // last: the free space cannot shrink the heap past it.
        let mut blocks: Vec<Vec<u8>> = (0..32_768).map(|i| vec![i as u8; 1024]).collect();
        let last = blocks.pop();
        drop(blocks);
        let before = resident();
        assert!(trim(), "the trim released memory");
        let after = resident();
        assert!(
            before.saturating_sub(after) > 16 << 20,
            "resident {before} bytes before the trim, {after} after"
        );
        drop(last);
    }
}
