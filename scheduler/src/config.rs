//! The `--config` file: upstream's `KubeSchedulerConfiguration`
//! (`kubescheduler.config.k8s.io/v1`), decoded strictly so a misspelt field
//! is an error rather than a silently ignored setting.

use serde::Deserialize;
use serde_json::Value;

/// The API version the file must declare.
pub const API_VERSION: &str = "kubescheduler.config.k8s.io/v1";

/// The scheduler's configuration file, the fields upstream defines.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SchedulerConfiguration {
    pub api_version: Option<String>,
    pub kind: Option<String>,
    pub parallelism: Option<u32>,
    pub leader_election: Option<LeaderElection>,
    pub client_connection: Option<ClientConnection>,
    pub health_bind_address: Option<String>,
    pub metrics_bind_address: Option<String>,
    pub enable_profiling: Option<bool>,
    pub enable_contention_profiling: Option<bool>,
    /// Share of nodes to find feasible before scoring; 0 means adaptive.
    pub percentage_of_nodes_to_score: Option<u32>,
    pub pod_initial_backoff_seconds: Option<u64>,
    pub pod_max_backoff_seconds: Option<u64>,
    pub delay_cache_until_active: Option<bool>,
    #[serde(default)]
    pub profiles: Vec<ProfileConfig>,
    #[serde(default)]
    pub extenders: Vec<Value>,
}

/// `leaderElection` (component-base's LeaderElectionConfiguration).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LeaderElection {
    pub leader_elect: Option<bool>,
    pub lease_duration: Option<String>,
    pub renew_deadline: Option<String>,
    pub retry_period: Option<String>,
    pub resource_lock: Option<String>,
    pub resource_name: Option<String>,
    pub resource_namespace: Option<String>,
}

/// `clientConnection`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClientConnection {
    pub kubeconfig: Option<String>,
    pub accept_content_types: Option<String>,
    pub content_type: Option<String>,
    pub qps: Option<f64>,
    pub burst: Option<i64>,
}

/// One scheduling profile: a scheduler name and its plugins.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProfileConfig {
    pub scheduler_name: Option<String>,
    pub percentage_of_nodes_to_score: Option<u32>,
    pub plugins: Option<Plugins>,
    #[serde(default)]
    pub plugin_config: Vec<PluginConfig>,
}

/// Plugin sets per extension point.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Plugins {
    pub multi_point: Option<PluginSet>,
    pub pre_enqueue: Option<PluginSet>,
    pub queue_sort: Option<PluginSet>,
    pub pre_filter: Option<PluginSet>,
    pub filter: Option<PluginSet>,
    pub post_filter: Option<PluginSet>,
    pub pre_score: Option<PluginSet>,
    pub score: Option<PluginSet>,
    pub reserve: Option<PluginSet>,
    pub permit: Option<PluginSet>,
    pub pre_bind: Option<PluginSet>,
    pub bind: Option<PluginSet>,
    pub post_bind: Option<PluginSet>,
}

/// Plugins enabled and disabled at one point (`*` disables all defaults).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PluginSet {
    #[serde(default)]
    pub enabled: Vec<PluginRef>,
    #[serde(default)]
    pub disabled: Vec<PluginRef>,
}

/// A plugin by name, with a score weight where it applies.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PluginRef {
    pub name: String,
    pub weight: Option<i64>,
}

/// Arguments for one plugin (`args` holds its `...Args` object).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PluginConfig {
    pub name: String,
    #[serde(default)]
    pub args: Value,
}

impl SchedulerConfiguration {
    /// Reads and checks a configuration file.
    pub fn parse(text: &str) -> Result<Self, String> {
        let cfg: SchedulerConfiguration =
            serde_saphyr::from_str(text).map_err(|e| format!("decoding scheduler config: {e}"))?;
        if cfg.kind.as_deref() != Some("KubeSchedulerConfiguration") {
            return Err("kind must be KubeSchedulerConfiguration".into());
        }
        if cfg.api_version.as_deref() != Some(API_VERSION) {
            return Err(format!("apiVersion must be {API_VERSION}"));
        }
        if let Some(p) = cfg.percentage_of_nodes_to_score.filter(|p| *p > 100) {
            return Err(format!("percentageOfNodesToScore: {p} is not in 0-100"));
        }
        let mut names = std::collections::BTreeSet::new();
        for p in &cfg.profiles {
            let name = p
                .scheduler_name
                .as_deref()
                .unwrap_or(crate::DEFAULT_SCHEDULER_NAME);
            if !names.insert(name) {
                return Err(format!("profiles: duplicate schedulerName {name:?}"));
            }
        }
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_profile_file_decodes() {
        let cfg = SchedulerConfiguration::parse(
            r#"
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
percentageOfNodesToScore: 50
profiles:
- schedulerName: bin-packing
  plugins:
    score:
      disabled: [{name: NodeResourcesBalancedAllocation}]
      enabled: [{name: NodeResourcesFit, weight: 5}]
  pluginConfig:
  - name: NodeResourcesFit
    args:
      scoringStrategy:
        type: MostAllocated
"#,
        );
        let cfg = match cfg {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(
            cfg.profiles[0].scheduler_name.as_deref(),
            Some("bin-packing")
        );
        assert_eq!(
            cfg.profiles[0].plugin_config[0].args["scoringStrategy"]["type"],
            "MostAllocated"
        );
    }

    #[test]
    fn a_misspelt_field_is_an_error() {
        let err = SchedulerConfiguration::parse(
            "apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\nprofile: []\n",
        );
        assert!(err.is_err_and(|e| e.contains("profile")));
    }
}
