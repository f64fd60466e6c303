//! The C allocator's settings for a long-running server.
//!
//! glibc's `malloc` gives threads that allocate at the same time arenas of their own, up to
//! eight per core, and each arena keeps memory that was freed in it for reuse; and it serves a
//! large allocation from the heap, where freed memory stays with the process, once a freed one
//! has raised its "mmap threshold" (up to 32 MB). A server whose async workers and blocking
//! threads build large documents (a conda-forge-size `repodata.json`, a 10 MB npm packument)
//! ends up holding that freed memory: with 500,000 conda records the heap peaked at about
//! 200 MB while the process held 342 MB. Measured with the same binary and requests
//! (docs/performance.md, conda gateway): at most two arenas on two cores, 307–314 MB; with
//! allocations of 4 MB and more also given back to the system when freed, 292 MB, with the
//! same request rates (a threshold of 128 KB got 273 MB but cut large streamed bodies' rates
//! at 64 clients, so it is not used).
//!
//! glibc reads these settings only from the environment, when the process starts, and the
//! workspace forbids `unsafe` (so no `mallopt` call): `formulary serve` therefore starts itself
//! again, in place (same process id, arguments and descriptors), with them set. Values already
//! in the environment are kept as they are.

/// The settings glibc reads from the environment, each with the value this server uses (the
/// arena count is filled in from the number of cores).
const SETTINGS: [(&str, &str); 2] = [
    ("MALLOC_ARENA_MAX", ""),
    ("MALLOC_MMAP_THRESHOLD_", "4194304"),
];

/// On Linux with glibc, when any of [`SETTINGS`] is missing from the environment, replaces this
/// process with itself started again with them set; returns only when it did not (other
/// systems, all set already, or the executable could not be started: the server then runs as
/// it is).
pub fn tune_by_restarting() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::os::unix::process::CommandExt;
        let missing: Vec<(&str, String)> = SETTINGS
            .iter()
            .filter(|(name, _)| std::env::var_os(name).is_none())
            .map(|(name, value)| {
                let value = if value.is_empty() {
                    let cores =
                        std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
                    cores.max(2).to_string()
                } else {
                    (*value).to_owned()
                };
                (*name, value)
            })
            .collect();
        if missing.is_empty() {
            return;
        }
        let Ok(executable) = std::env::current_exe() else {
            return;
        };
        let mut arguments = std::env::args_os();
        let name = arguments
            .next()
            .unwrap_or_else(|| executable.clone().into());
        // `exec` returns only when it failed; the server then goes on as it was started.
        let _failed = std::process::Command::new(&executable)
            .arg0(name)
            .args(arguments)
            .envs(missing)
            .exec();
    }
}
