//! Content negotiation: which representation a client accepts, and
//! decoding request bodies by their media type.

use serde_json::Value;

use crate::error::{ApiError, ApiResult};

/// The representation of a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `application/json`.
    Json,
    /// `application/yaml`.
    Yaml,
    /// `application/json;as=Table;v=v1;g=meta.k8s.io`.
    Table,
    /// `application/vnd.kubernetes.protobuf` (built-in kinds; watches are
    /// answered in JSON, which every protobuf client also accepts).
    Protobuf,
}

/// One media range of an Accept header: type and parameters.
struct MediaRange<'a> {
    essence: &'a str,
    params: Vec<(&'a str, &'a str)>,
}

fn parse_media_ranges(header: &str) -> Vec<MediaRange<'_>> {
    header
        .split(',')
        .map(|range| {
            let mut parts = range.split(';').map(str::trim);
            let essence = parts.next().unwrap_or_default();
            let params = parts
                .filter_map(|p| p.split_once('='))
                .map(|(k, v)| (k.trim(), v.trim()))
                .collect();
            MediaRange { essence, params }
        })
        .collect()
}

impl MediaRange<'_> {
    fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| *v)
    }
}

impl Format {
    /// The same format, but plain JSON instead of a Table (for objects that
    /// are not the resource's kind, e.g. a Scale).
    pub fn without_table(self) -> Self {
        if self == Format::Table {
            Format::Json
        } else {
            self
        }
    }
}

/// Picks the first representation of `accept` the server can produce.
pub fn response_format(accept: Option<&str>) -> ApiResult<Format> {
    let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
        return Ok(Format::Json);
    };
    for range in parse_media_ranges(accept) {
        match range.essence {
            "application/json" => match range.param("as") {
                Some("Table")
                    if range.param("g") == Some("meta.k8s.io")
                        && matches!(range.param("v"), Some("v1") | Some("v1beta1")) =>
                {
                    return Ok(Format::Table);
                }
                Some(_) => continue,
                None => return Ok(Format::Json),
            },
            "application/yaml" => return Ok(Format::Yaml),
            crate::protobuf::MEDIA_TYPE if range.param("as").is_none() => {
                return Ok(Format::Protobuf);
            }
            "*/*" | "application/*" => return Ok(Format::Json),
            _ => continue,
        }
    }
    Err(ApiError::not_acceptable(accept))
}

/// The offer `accept` prefers, for endpoints with a fixed set of media
/// types (`/openapi/v2`): ranges by descending `q` (0 refuses), the more
/// specific first on a tie, as upstream's goautoneg orders them; `*/*` and
/// `type/*` match the first offer of that type, and a missing header means
/// `*/*`. `None` when nothing offered is acceptable (406).
pub fn preferred<'a>(accept: Option<&str>, offers: &[&'a str]) -> Option<&'a str> {
    let accept = accept.filter(|a| !a.trim().is_empty()).unwrap_or("*/*");
    let mut ranges: Vec<(f32, u8, String)> = parse_media_ranges(accept)
        .into_iter()
        .map(|r| {
            let q = r
                .param("q")
                .and_then(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            let essence = r.essence.to_ascii_lowercase();
            let specificity = match essence.split_once('/') {
                Some(("*", _)) => 0,
                Some((_, "*")) => 1,
                _ => 2,
            };
            (q, specificity, essence)
        })
        .filter(|(q, _, _)| *q > 0.0)
        .collect();
    // Stable: equal ranges keep the client's order.
    ranges.sort_by(|a, b| b.0.total_cmp(&a.0).then(b.1.cmp(&a.1)));
    ranges.iter().find_map(|(_, _, range)| {
        let (kind, sub) = range.split_once('/')?;
        offers.iter().copied().find(|offer| {
            offer
                .split_once('/')
                .is_some_and(|(ok, os)| (kind == "*" || kind == ok) && (sub == "*" || sub == os))
        })
    })
}

/// Whether the client asked for aggregated discovery (apidiscovery v2).
pub fn wants_aggregated_discovery(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| {
        parse_media_ranges(a).iter().any(|r| {
            r.essence == "application/json"
                && r.param("g") == Some("apidiscovery.k8s.io")
                && r.param("v") == Some("v2")
                && r.param("as") == Some("APIGroupDiscoveryList")
        })
    })
}

/// The essence of a Content-Type header (`application/json`, ...).
pub fn content_essence(content_type: Option<&str>) -> String {
    content_type
        .unwrap_or("application/json")
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// Decodes a JSON, YAML or Kubernetes protobuf body into a JSON value.
pub fn decode_body(content_type: Option<&str>, body: &[u8]) -> ApiResult<Value> {
    let essence = content_essence(content_type);
    match essence.as_str() {
        "application/json" | "" => decode_json(body),
        "application/yaml" | "application/x-yaml" | "text/yaml" => decode_yaml(body),
        crate::protobuf::MEDIA_TYPE => {
            crate::protobuf::decode_envelope(body).map_err(ApiError::bad_request)
        }
        other => Err(ApiError::unsupported_media_type(other)),
    }
}

/// Decodes JSON with upstream's wording for malformed input.
pub fn decode_json(body: &[u8]) -> ApiResult<Value> {
    if body.is_empty() {
        return Err(ApiError::bad_request("the request body is empty"));
    }
    serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "the body of the request could not be decoded as JSON: {e}"
        ))
    })
}

/// Decodes YAML into the JSON data model.
pub fn decode_yaml(body: &[u8]) -> ApiResult<Value> {
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::bad_request("the YAML body is not UTF-8"))?;
    serde_saphyr::from_str::<Value>(text).map_err(|e| {
        ApiError::bad_request(format!(
            "the body of the request could not be decoded as YAML: {e}"
        ))
    })
}

/// Encodes a value in the chosen format (Table is built by the caller).
pub fn encode(value: &Value, format: Format) -> ApiResult<(Vec<u8>, &'static str)> {
    match format {
        Format::Yaml => {
            let text = serde_saphyr::to_string(value).map_err(ApiError::internal)?;
            Ok((text.into_bytes(), "application/yaml"))
        }
        Format::Protobuf => match crate::protobuf::encode_envelope(value) {
            Ok(bytes) => Ok((bytes, crate::protobuf::MEDIA_TYPE)),
            Err(e) => {
                // Every client that asks for protobuf also accepts JSON;
                // custom resources and CRDs always answer in JSON.
                tracing::debug!(error = %e, "no protobuf encoding; answering in JSON");
                encode(value, Format::Json)
            }
        },
        Format::Json | Format::Table => Ok((
            serde_json::to_vec(value).map_err(ApiError::internal)?,
            "application/json",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubectl_get_accept_header_selects_table() {
        let kubectl = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(response_format(Some(kubectl)), Ok(Format::Table));
        assert_eq!(response_format(None), Ok(Format::Json));
        assert_eq!(
            response_format(Some("application/vnd.kubernetes.protobuf,application/json")),
            Ok(Format::Protobuf)
        );
        assert_eq!(response_format(Some("application/yaml")), Ok(Format::Yaml));
        assert!(response_format(Some("text/html")).is_err());
    }

    #[test]
    fn preferred_follows_q_values_specificity_and_wildcards() {
        let offers = ["application/json", "application/x-protobuf"];
        assert_eq!(preferred(None, &offers), Some("application/json"));
        assert_eq!(
            preferred(Some("application/x-protobuf"), &offers),
            Some("application/x-protobuf")
        );
        assert_eq!(
            preferred(Some("*/*;q=0.5, application/x-protobuf"), &offers),
            Some("application/x-protobuf")
        );
        assert_eq!(
            preferred(Some("application/*, application/x-protobuf"), &offers),
            Some("application/x-protobuf"),
            "the exact type outranks a wildcard of the same q"
        );
        assert_eq!(
            preferred(Some("application/x-protobuf;q=0, */*"), &offers),
            Some("application/json")
        );
        assert_eq!(preferred(Some("text/html"), &offers), None);
    }

    #[test]
    fn aggregated_discovery_needs_the_v2_parameters() {
        let a = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert!(wants_aggregated_discovery(Some(a)));
        assert!(!wants_aggregated_discovery(Some("application/json")));
    }

    #[test]
    fn malformed_bodies_are_bad_requests() {
        assert_eq!(
            decode_body(None, b"{not json").map_err(|e| e.code.as_u16()),
            Err(400)
        );
        assert_eq!(
            decode_body(Some("application/yaml"), b"a: [1, 2").map_err(|e| e.code.as_u16()),
            Err(400)
        );
        assert_eq!(
            decode_body(Some("application/vnd.kubernetes.protobuf"), b"k8s\0")
                .map_err(|e| e.code.as_u16()),
            Err(400)
        );
        assert!(
            decode_body(
                Some("application/yaml"),
                b"kind: Pod\nmetadata:\n  name: x\n"
            )
            .is_ok()
        );
    }
}
