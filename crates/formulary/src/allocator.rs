//! The C allocator's settings for a long-running server.
//!
//! glibc's `malloc` gives threads that allocate at the same time arenas of their own, up to
//! eight per core, and each arena keeps memory that was freed in it for reuse. A server whose
//! async workers and blocking threads all build large documents (a conda-forge-size
//! `repodata.json`, a 10 MB npm packument) ends up holding the freed memory of every arena:
//! with 500,000 conda records the heap peaked at about 200 MB while the process held 342 MB,
//! and with `MALLOC_ARENA_MAX=2` the same requests peaked at 256 MB, measured back to back
//! (docs/performance.md, conda gateway).
//!
//! glibc reads that setting only from the environment, when the process starts, and the
//! workspace forbids `unsafe` (so no `mallopt` call): `formulary serve` therefore starts itself
//! again, in place (same process id, arguments and descriptors), with `MALLOC_ARENA_MAX` set to
//! the number of cores (at least two). A value already in the environment is kept as it is.

/// The environment variable glibc reads.
const ARENA_MAX: &str = "MALLOC_ARENA_MAX";

/// On Linux with glibc and no `MALLOC_ARENA_MAX` in the environment, replaces this process
/// with itself started again with it set; returns only when it did not (other systems, the
/// setting present, or the executable could not be started: the server then runs as it is).
pub fn limit_arenas_by_restarting() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::os::unix::process::CommandExt;
        if std::env::var_os(ARENA_MAX).is_some() {
            return;
        }
        let Ok(executable) = std::env::current_exe() else {
            return;
        };
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
        let mut arguments = std::env::args_os();
        let name = arguments
            .next()
            .unwrap_or_else(|| executable.clone().into());
        let error = std::process::Command::new(&executable)
            .arg0(name)
            .args(arguments)
            .env(ARENA_MAX, cores.max(2).to_string())
            .exec();
        tracing::debug!(%error, "could not start again with {ARENA_MAX} set; going on as started");
    }
}
