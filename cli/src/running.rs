//! Finding the running shop from any directory.
//!
//! `emporium up` records its data folder in a per-user file (under
//! `$XDG_STATE_HOME`, else `~/.local/state`); `status`, `events`, `logs`, `trace`
//! and the other commands use the folder given with `--data-dir`, else `./data`
//! when a shop runs there, else the recorded one.

use std::path::PathBuf;

/// The per-user file naming the data folder of the last `emporium up`.
fn record() -> Option<PathBuf> {
    let state = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))?;
    Some(state.join("emporium").join("data-dir"))
}

/// Records `data_dir` (absolute) as the running shop's; failing is not fatal.
pub fn remember(data_dir: &std::path::Path) {
    let Some(file) = record() else { return };
    // Without it, the commands still take `--data-dir`.
    let _ = file
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| std::fs::write(&file, data_dir.display().to_string()));
}

/// The data folder to ask: `given`, else the default (`./data`) when a shop has
/// run there, else the one the last `emporium up` recorded.
pub fn data_dir(given: Option<PathBuf>) -> PathBuf {
    if let Some(dir) = given {
        return dir;
    }
    let default = emporium_config::Common::default().data_dir;
    if default.join("run").exists() {
        return default;
    }
    record()
        .and_then(|f| std::fs::read_to_string(f).ok())
        .map(|d| PathBuf::from(d.trim()))
        .filter(|d| d.join("run").exists())
        .unwrap_or(default)
}
