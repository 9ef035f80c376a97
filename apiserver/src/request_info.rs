//! Turns a request's method and path into what it asks for, after
//! upstream's `RequestInfoFactory`. Routing, metrics and (later)
//! authorization all read the same [`RequestInfo`].

use http::Method;

/// What a resource request addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceRequest {
    /// API group ("" for core).
    pub group: String,
    /// API version.
    pub version: String,
    /// Plural resource name.
    pub resource: String,
    /// Namespace from the path, if any.
    pub namespace: String,
    /// Object name, if any.
    pub name: String,
    /// Subresource, if any.
    pub subresource: String,
    /// Upstream's verb: get, list, watch, create, update, patch, delete,
    /// deletecollection.
    pub verb: &'static str,
}

/// A classified request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestInfo {
    /// A resource request under `/api/v1` or `/apis/<g>/<v>`.
    Resource(ResourceRequest),
    /// Discovery or any other non-resource path.
    NonResource {
        /// The path.
        path: String,
        /// `get`, `post`, ...
        verb: &'static str,
    },
}

/// The subresources addressed as `namespaces/<name>/<sub>`.
const NAMESPACE_SUBRESOURCES: &[&str] = &["status", "finalize"];

fn non_resource_verb(method: &Method) -> &'static str {
    match *method {
        Method::GET | Method::HEAD => "get",
        Method::POST => "post",
        Method::PUT => "put",
        Method::PATCH => "patch",
        Method::DELETE => "delete",
        _ => "unknown",
    }
}

/// Classifies a request. `watch` is whether the query asks for a watch.
pub fn resolve(method: &Method, path: &str, watch: bool) -> RequestInfo {
    let parts: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|p| !p.is_empty())
        .collect();
    let non_resource = || RequestInfo::NonResource {
        path: path.to_string(),
        verb: non_resource_verb(method),
    };
    let (group, version, rest) = match parts.as_slice() {
        ["api", version, rest @ ..] if !rest.is_empty() => ("", *version, rest),
        ["apis", group, version, rest @ ..] if !rest.is_empty() => (*group, *version, rest),
        _ => return non_resource(),
    };
    let mut rest: Vec<&str> = rest.to_vec();
    let mut watch = watch;
    if rest.first() == Some(&"watch") {
        watch = true;
        rest.remove(0);
    }
    let mut req = ResourceRequest {
        group: group.into(),
        version: version.into(),
        ..Default::default()
    };
    if rest.first() == Some(&"namespaces") && rest.len() > 1 {
        req.namespace = rest[1].to_string();
        if rest.len() > 2 && !NAMESPACE_SUBRESOURCES.contains(&rest[2]) {
            rest.drain(..2);
        } else {
            req.namespace.clear();
        }
    }
    match rest.as_slice() {
        [resource] => req.resource = resource.to_string(),
        [resource, name] => {
            req.resource = resource.to_string();
            req.name = name.to_string();
        }
        [resource, name, sub] => {
            req.resource = resource.to_string();
            req.name = name.to_string();
            req.subresource = sub.to_string();
        }
        _ => return non_resource(),
    }
    if req.resource == "namespaces" && !req.name.is_empty() {
        // `namespaces/<name>` addresses the Namespace itself.
        req.namespace.clear();
    }
    req.verb = match (method.clone(), req.name.is_empty()) {
        (Method::GET | Method::HEAD, true) if watch => "watch",
        (Method::GET | Method::HEAD, false) if watch => "watch",
        (Method::GET | Method::HEAD, true) => "list",
        (Method::GET | Method::HEAD, false) => "get",
        (Method::POST, _) => "create",
        (Method::PUT, _) => "update",
        (Method::PATCH, _) => "patch",
        (Method::DELETE, true) => "deletecollection",
        (Method::DELETE, false) => "delete",
        _ => "unknown",
    };
    RequestInfo::Resource(req)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(method: Method, path: &str) -> ResourceRequest {
        match resolve(&method, path, false) {
            RequestInfo::Resource(r) => r,
            other => panic!("not a resource request: {other:?}"),
        }
    }

    #[test]
    fn namespaced_and_cluster_paths_resolve_like_upstream() {
        let r = res(Method::GET, "/api/v1/namespaces/default/pods/web");
        assert_eq!(
            (
                r.resource.as_str(),
                r.namespace.as_str(),
                r.name.as_str(),
                r.verb
            ),
            ("pods", "default", "web", "get")
        );
        let r = res(Method::GET, "/apis/apps/v1/deployments");
        assert_eq!(
            (r.group.as_str(), r.resource.as_str(), r.verb),
            ("apps", "deployments", "list")
        );
        let r = res(Method::PUT, "/api/v1/namespaces/kube-system/status");
        assert_eq!(
            (
                r.resource.as_str(),
                r.name.as_str(),
                r.subresource.as_str(),
                r.namespace.as_str()
            ),
            ("namespaces", "kube-system", "status", "")
        );
        let r = res(Method::GET, "/api/v1/namespaces/x");
        assert_eq!(
            (r.resource.as_str(), r.name.as_str(), r.namespace.as_str()),
            ("namespaces", "x", "")
        );
        let r = res(Method::POST, "/api/v1/namespaces/d/pods/p/binding");
        assert_eq!((r.subresource.as_str(), r.verb), ("binding", "create"));
        let r = res(Method::DELETE, "/api/v1/namespaces/d/configmaps");
        assert_eq!(r.verb, "deletecollection");
    }

    #[test]
    fn watch_comes_from_the_query_or_the_legacy_prefix() {
        assert_eq!(
            res(Method::GET, "/api/v1/watch/namespaces/d/pods").verb,
            "watch"
        );
        match resolve(&Method::GET, "/api/v1/pods", true) {
            RequestInfo::Resource(r) => assert_eq!(r.verb, "watch"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn discovery_paths_are_non_resource() {
        assert!(matches!(
            resolve(&Method::GET, "/api/v1", false),
            RequestInfo::NonResource { .. }
        ));
        assert!(matches!(
            resolve(&Method::GET, "/apis/apps/v1", false),
            RequestInfo::NonResource { .. }
        ));
        assert!(matches!(
            resolve(&Method::GET, "/healthz", false),
            RequestInfo::NonResource { .. }
        ));
    }
}
