//! The Prometheus files of a running `emporium up`: the shipped
//! `deploy/prometheus/` config and rules, written to `<data>/run/` with this run's
//! registry address, so `prometheus --config.file=data/run/prometheus.yml` scrapes
//! every service as it is.

use std::path::Path;

const CONFIG: &str = include_str!("../../deploy/prometheus/prometheus.yml");
const RULES: &str = include_str!("../../deploy/prometheus/alerts.yml");
/// The registry address the shipped config names.
const PLACEHOLDER: &str = "http://127.0.0.1:8500";

/// Writes `prometheus.yml` and `alerts.yml` into `run_dir` for `registry_url`.
pub fn write(run_dir: &Path, registry_url: &str) -> std::io::Result<()> {
    std::fs::write(run_dir.join("alerts.yml"), RULES)?;
    std::fs::write(run_dir.join("prometheus.yml"), config_for(registry_url))
}

fn config_for(registry_url: &str) -> String {
    CONFIG.replace(PLACEHOLDER, registry_url.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_config_points_at_this_registry() {
        assert!(
            CONFIG.contains(PLACEHOLDER),
            "the placeholder is in the config"
        );
        let config = config_for("http://127.0.0.1:41234/");
        assert!(config.contains("http://127.0.0.1:41234/internal/registry/prometheus/targets"));
        assert!(!config.contains(PLACEHOLDER));
        assert!(config.contains("alerts.yml"), "rules next to the config");
    }
}
