//! Which controllers run, from `--controllers` with upstream's rules:
//! `*` turns on every controller that is on by default, `name` turns one
//! on, `-name` turns one off, and the first entry naming a controller
//! decides for it.

use anyhow::{Result, bail};

/// The controllers this binary implements, upstream's names.
pub const IMPLEMENTED: &[&str] = &[
    "cronjob",
    "daemonset",
    "deployment",
    "disruption",
    "endpoint",
    "endpointslice",
    "garbagecollector",
    "job",
    "namespace",
    "node-lifecycle",
    "nodeipam",
    "pod-garbage-collector",
    "replicaset",
    "replicationcontroller",
    "serviceaccount",
    "statefulset",
    "ttl-after-finished",
];

/// Upstream controller names not implemented yet: accepted (so upstream
/// command lines keep working) and reported, never run.
const NOT_YET: &[&str] = &[
    "bootstrapsigner",
    "endpointslicemirroring",
    "horizontalpodautoscaling",
    "persistentvolume-binder",
    "resourcequota",
    "serviceaccount-token",
    "tokencleaner",
    "ttl",
];

/// Upstream's `IsControllerEnabled`: nothing here is off by default.
fn enabled(name: &str, flags: &[String]) -> bool {
    let mut star = false;
    for flag in flags {
        if flag == name {
            return true;
        }
        if flag.strip_prefix('-') == Some(name) {
            return false;
        }
        if flag == "*" {
            star = true;
        }
    }
    star
}

/// The implemented controllers `flags` turns on; unknown names are an
/// error, as upstream's flag validation makes them.
pub fn enabled_controllers(flags: &[String]) -> Result<Vec<&'static str>> {
    for flag in flags {
        let name = flag.strip_prefix('-').unwrap_or(flag);
        if name != "*" && !IMPLEMENTED.contains(&name) && !NOT_YET.contains(&name) {
            bail!("{flag:?} is not in the list of known controllers");
        }
        if NOT_YET.contains(&name) && !flag.starts_with('-') {
            tracing::warn!(controller = name, "not implemented yet; not started");
        }
    }
    Ok(IMPLEMENTED
        .iter()
        .copied()
        .filter(|name| enabled(name, flags))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on(flags: &[&str]) -> Vec<&'static str> {
        let flags: Vec<String> = flags.iter().map(|s| s.to_string()).collect();
        enabled_controllers(&flags).unwrap_or_default()
    }

    #[test]
    fn star_name_and_minus_name_follow_upstream() {
        assert_eq!(on(&["*"]), IMPLEMENTED.to_vec());
        assert_eq!(on(&["replicaset"]), vec!["replicaset"]);
        assert_eq!(
            on(&[
                "*",
                "-namespace",
                "-serviceaccount",
                "-garbagecollector",
                "-pod-garbage-collector",
                "-node-lifecycle",
                "-disruption",
                "-job",
                "-cronjob",
                "-deployment",
                "-daemonset",
                "-statefulset",
                "-endpoint",
                "-endpointslice",
                "-nodeipam"
            ]),
            vec!["replicaset", "replicationcontroller", "ttl-after-finished"]
        );
        // The first entry naming a controller decides.
        assert_eq!(on(&["namespace", "-namespace"]), vec!["namespace"]);
        assert!(on(&["-replicaset"]).is_empty());
        assert_eq!(on(&["*", "statefulset"]), IMPLEMENTED.to_vec());
    }

    #[test]
    fn unknown_names_are_rejected() {
        assert!(enabled_controllers(&["replicasets".to_string()]).is_err());
        assert!(enabled_controllers(&["-nope".to_string()]).is_err());
    }
}
